#!/usr/bin/env python3
"""Which tables and indexes the pages in SQLite WAL files belong to: the WAL census of the
README's Performance section ("Fewer pages per login").

    python3 bench/wal_census.py DB WAL [WAL ...]

WAL: copies of `bench.db-wal` taken while a scenario runs (the bench's database lives in
`/tmp/mfagate-bench-*/`), e.g. six copies 0.7 s apart during `--only S2 --seconds 7`.
DB: a copy of `bench.db` taken after them; SQLite's `dbstat` names each page of it. Pages the
WAL holds beyond the copy's end show as `?new`.

Frames of an earlier life of the WAL (their salt differs from the header's) are skipped. The
counts are per login, taking `challenges_by_user` (one random page per login with TOTP) as the
number of logins; read them against each other, as a before and after of one change.
"""
import collections
import sqlite3
import struct
import sys


def main(db, wals):
    connection = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    names = dict((page, name) for name, page in connection.execute("SELECT name, pageno FROM dbstat"))
    pages = collections.Counter()
    frames = commits = 0
    for wal in wals:
        data = open(wal, "rb").read()
        if len(data) < 32:
            continue
        page_size = struct.unpack(">I", data[8:12])[0]
        salt = data[16:24]
        offset = 32
        while offset + 24 + page_size <= len(data):
            page, commit = struct.unpack(">II", data[offset:offset + 8])
            if data[offset + 8:offset + 16] != salt:
                break
            pages[names.get(page, "?new")] += 1
            frames += 1
            commits += commit != 0
            offset += 24 + page_size
    logins = pages.get("challenges_by_user") or 1
    print(f"{frames} frames in {commits} commits ({frames / max(commits, 1):.1f} a commit); "
          f"{frames / logins:.2f} pages per login (challenges_by_user = 1 per login)")
    for name, count in pages.most_common():
        print(f"  {name:45s} {count / logins:6.2f}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
