"""Has anything landed yet? The scheduled dbt build's first question (buildspec.yml).

    python -m infra.landed_yet     # exit 0: yes; 3: not yet; 1: could not tell (an error)

A new stack has no ``raw_orders`` in its Glue database until the first file or stream batch
lands (the ingestion registers the table: ingestion/glue.py), so a scheduled build before then
would fail on its source freshness and raise the failed-builds alarm every six hours for
nothing. The build asks this first and, on 3, builds nothing and says why. Any other failure
(no access, no database, throttling) is an error: a build that cannot tell does not pass
quietly. Reads ``DUFF_GLUE_DATABASE`` and ``DUFF_ATHENA_REGION`` as the build project sets them.
"""

from __future__ import annotations

import os
import sys

NOT_YET = 3
TABLE = "raw_orders"


def main() -> int:
    import boto3

    database = os.environ["DUFF_GLUE_DATABASE"]
    glue = boto3.client("glue", region_name=os.environ.get("DUFF_ATHENA_REGION"))
    try:
        glue.get_database(Name=database)  # missing: the stack is broken, not new
        try:
            glue.get_table(DatabaseName=database, Name=TABLE)
        except glue.exceptions.EntityNotFoundException:
            print(f"nothing has landed yet: no {database}.{TABLE}, so nothing to build")
            return NOT_YET
    except Exception as exc:  # one line, and the build fails
        print(f"landed_yet: cannot tell whether {database}.{TABLE} exists: {exc}", file=sys.stderr)
        return 1
    print(f"{database}.{TABLE} exists: building")
    return 0


if __name__ == "__main__":
    sys.exit(main())
