// Mapping owner names from the sender to local ids (uidlist.c): a name that exists locally
// maps to the local id, else the numeric id is kept. Reads the local account databases.
import { readFileSync } from "node:fs";

function readDb(path: string): Map<string, number> {
  const m = new Map<string, number>();
  try {
    for (const line of readFileSync(path, "utf8").split("\n")) {
      const f = line.split(":");
      if (f.length >= 3 && f[0] && !line.startsWith("#")) {
        const id = Number(f[2]);
        if (Number.isInteger(id) && !m.has(f[0])) m.set(f[0], id);
      }
    }
  } catch {
    /* no database on this system */
  }
  return m;
}

export class OwnerMap {
  private users: Map<string, number> | null = null;
  private groups: Map<string, number> | null = null;

  constructor(private readonly numericIds: boolean) {}

  uid(id: number, name: string | undefined): number {
    if (this.numericIds || !name || id === 0) return id;
    this.users ??= readDb("/etc/passwd");
    return this.users.get(name) ?? id;
  }

  gid(id: number, name: string | undefined): number {
    if (this.numericIds || !name || id === 0) return id;
    this.groups ??= readDb("/etc/group");
    return this.groups.get(name) ?? id;
  }
}
