// A TypeScript module that imports nothing of keyhole's source, so that loading it through tsx
// loads no second copy of that source (see policies.js).
export const policies: { tables: object; roles: string[] } = {
  tables: { 'app.notes': {} },
  roles: ['member'],
}
