"""``python -m leaderboard COMMAND``: admin commands of the leaderboard.

- ``rescore --protocol ID [--all | JOB ...]``: queue finished submissions again under the
  current protocol (``leaderboard.jobs.rescore``).
"""

from __future__ import annotations

import sys

COMMANDS = ("rescore",)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    from leaderboard.jobs import rescore
    return rescore.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
