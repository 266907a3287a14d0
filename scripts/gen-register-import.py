#!/usr/bin/env python3
"""Writes a synthetic register in the `issuer import` format (docs/register-import.md) for
measuring the import rate: N residents in households of two, each with a 個人番号 and one
tax record. TEST DATA ONLY (made-up names and numbers); kept out of every crate's
dependencies. Usage: scripts/gen-register-import.py N MUNICIPALITY_CODE > register.jsonl"""
import json
import sys


def individual_number(body):
    digits = "%011d" % (body % 100_000_000_000)
    total = sum(int(c) * ((n + 1) if n <= 6 else n - 5)
                for n, c in enumerate(reversed(digits), 1))
    rem = total % 11
    return digits + str(0 if rem <= 1 else 11 - rem)


def main():
    n, code = int(sys.argv[1]), sys.argv[2]
    out = sys.stdout
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for h in range(0, (n + 1) // 2):
        hid = "H%08d" % h
        address = "東京都千代田区千代田%d丁目%d番%d号" % (h % 5 + 1, h % 30 + 1, h % 20 + 1)
        head = "R%08d" % (2 * h)
        out.write(dumps({"kind": "household", "municipality_code": code, "household_id": hid,
                         "head_resident_id": head, "address": address}) + "\n")
        for k in range(2):
            i = 2 * h + k
            if i >= n:
                break
            rid = "R%08d" % i
            out.write(dumps({
                "kind": "resident", "municipality_code": code, "resident_id": rid,
                "household_id": hid, "family_name": "試験", "given_name": "太郎" if k == 0 else "花子",
                "family_name_kana": "シケン", "given_name_kana": "タロウ" if k == 0 else "ハナコ",
                "birth_date": "%04d-%02d-%02d" % (1940 + i % 60, i % 12 + 1, i % 28 + 1),
                "sex": 1 + k, "relationship": "世帯主" if k == 0 else "妻", "address": address,
                "resident_since": "2010-04-01", "address_since": "2010-04-01", "status": "active",
                "individual_number": individual_number(10_000_000_000 + i)}) + "\n")
            out.write(dumps({
                "kind": "tax_record", "resident_id": rid, "fiscal_year": 2026,
                "salary_income": 5_000_000, "total_income": 3_560_000, "deductions": 1_200_000,
                "taxable_income": 2_360_000, "municipal_tax": 141_600, "prefectural_tax": 94_400,
                "dependents": 0}) + "\n")


if __name__ == "__main__":
    main()
