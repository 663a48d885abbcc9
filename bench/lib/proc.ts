/**
 * CPU time of another process from /proc (Linux), in clock ticks (10 ms): how the profiles read
 * what a PostgreSQL backend spent, which its client cannot see. Throws when the process has ended.
 */
import { readFileSync } from 'node:fs'

export function cpuTicks(pid: number): number {
  // After the command name (which may hold spaces, never ') '): utime and stime are fields 14–15.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return Number(fields[11]) + Number(fields[12])
}
