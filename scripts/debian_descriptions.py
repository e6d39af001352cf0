"""An article/summary set from text nobody here wrote: each installed Debian package's long
description (the article) and its one-line synopsis (the summary), read from dpkg's status
database. Packages whose descriptions repeat another's are kept once; a package goes to the test
split when the SHA-1 of its name is 0 mod 8 (a split that does not move when packages come and go).

    python scripts/debian_descriptions.py [--status /var/lib/dpkg/status] --out data/debian
    # -> data/debian/train.jsonl, data/debian/test.jsonl (article, highlights, id)
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path


def packages(status: Path) -> list[dict]:
    """(name, synopsis, long description) of each stanza; the long description's " ." lines are
    paragraph breaks, its lines lose their leading space."""
    out, name, synopsis, body, in_description = [], None, None, [], False
    for line in [*status.read_text(encoding="utf-8", errors="replace").splitlines(), ""]:
        if not line:
            if name and synopsis and body:
                out.append({"id": name, "highlights": synopsis, "article": "\n".join(body).strip()})
            name, synopsis, body, in_description = None, None, [], False
        elif line.startswith("Package:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("Description:"):
            synopsis, in_description = line.split(":", 1)[1].strip(), True
        elif in_description and line.startswith(" "):
            text = line[1:]
            body.append("" if text.strip() == "." else text.strip())
        else:
            in_description = False
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status", type=Path, default=Path("/var/lib/dpkg/status"), help="dpkg's status file")
    parser.add_argument("--out", type=Path, required=True, help="folder for train.jsonl and test.jsonl")
    args = parser.parse_args()
    seen, splits = set(), {"train": [], "test": []}
    for row in sorted(packages(args.status), key=lambda r: r["id"]):
        key = (row["highlights"], row["article"])
        if key in seen:
            continue
        seen.add(key)
        test = int(hashlib.sha1(row["id"].encode()).hexdigest(), 16) % 8 == 0
        splits["test" if test else "train"].append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        with open(args.out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        print(f"{args.out / f'{split}.jsonl'}: {len(rows)} packages")


if __name__ == "__main__":
    main()
