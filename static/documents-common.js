// What the /documents pages share: the names of kinds and status, and years in both eras.

export const KINDS = { constitution: "รัฐธรรมนูญ", act: "พระราชบัญญัติ" };

export function yearText(doc) {
  return `พ.ศ. ${doc.year_be} (ค.ศ. ${doc.year_ce})`;
}

export function statusText(doc) {
  return doc.in_force ? "ใช้บังคับอยู่" : "ยกเลิกแล้ว";
}
