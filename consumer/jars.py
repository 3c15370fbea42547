"""The MultiLangDaemon's jars: check they are there, or fetch them with Maven.

amazon_kclpy downloads its jars while it is built; where that download cannot get through,
Maven resolves the same artifacts from Maven Central into amazon_kclpy's ``jars`` folder.

    python -m consumer.jars --check     # exit 1 when the jars are missing
    python -m consumer.jars --fetch     # mvn dependency:copy-dependencies into that folder
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

POM = Path(__file__).parent / "resources" / "kcl-pom.xml"
REQUIRED = ("amazon-kinesis-client-multilang-", "amazon-kinesis-client-")


def default_dir() -> Path:
    import amazon_kclpy

    return Path(amazon_kclpy.__file__).parent / "jars"


def present(folder: Path) -> bool:
    names = [p.name for p in folder.glob("*.jar")] if folder.is_dir() else []
    return all(any(n.startswith(prefix) for n in names) for prefix in REQUIRED)


def fetch(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={folder}",
            "-DincludeScope=runtime",
        ],
        check=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=None, help="jars folder (default: amazon_kclpy's)")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true")
    group.add_argument("--fetch", action="store_true")
    args = parser.parse_args(argv)
    folder = args.dir or default_dir()
    if args.fetch and not present(folder):
        fetch(folder)
    ok = present(folder)
    print(f"KCL jars in {folder}: {'ok' if ok else 'missing'}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
