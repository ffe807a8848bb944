"""``python -m wsfleet_operator [kopf run flags]``: the operator as deployed.

Equivalent to ``kopf run --standalone --liveness=<url> -m wsfleet_operator`` plus
``--namespace`` for each entry of ``WSFLEET_OPERATOR_NAMESPACES`` (``--all-namespaces`` when it
is empty). Extra arguments go to ``kopf run`` (e.g. ``--verbose``, ``--log-format=json``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

from . import MISSING_KOPF

try:
    from kopf.cli import main as kopf_main
except ImportError:  # an optional extra: one sentence, not a traceback
    sys.exit(f"wsfleet-operator: {MISSING_KOPF}")

from .settings import OperatorSettings, SettingsError


def command_line(settings: OperatorSettings, extra: list[str]) -> list[str]:
    args = ["run", "--standalone", f"--liveness={settings.liveness}"]
    if settings.namespaces:
        for namespace in settings.namespaces:
            args += ["--namespace", namespace]
    else:
        args.append("--all-namespaces")
    return [*args, *extra, "-m", "wsfleet_operator"]


def name_kopf_after_the_pod(env: MutableMapping[str, str]) -> None:
    """kopf names its instance ``POD_ID``, else after the OS user (``getpass.getuser()``), which
    raises KeyError for a ``runAsUser`` the image's /etc/passwd does not list (10001 in ours).
    The chart gives the pod's name as ``POD_NAME``: use it."""
    if not env.get("POD_ID") and env.get("POD_NAME"):
        env["POD_ID"] = env["POD_NAME"]


def main(argv: list[str] | None = None) -> None:
    name_kopf_after_the_pod(os.environ)
    try:
        settings = OperatorSettings.from_env()
    except SettingsError as exc:
        sys.exit(f"wsfleet-operator: {exc}")
    kopf_main(
        args=command_line(settings, list(sys.argv[1:] if argv is None else argv)),
        prog_name="wsfleet-operator",
    )


if __name__ == "__main__":
    main()
