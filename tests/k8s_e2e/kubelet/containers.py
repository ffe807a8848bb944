"""One container of a pod on the test kubelet: its process, restarts with back-off, probes, and
the stop sequence (preStop, SIGTERM, grace period, SIGKILL)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.k8s_e2e.kubelet import images
from tests.k8s_e2e.kubelet.probes import run_probe

log = logging.getLogger("k8s_e2e.kubelet")
REPO = Path(__file__).resolve().parents[3]
MAX_BACKOFF = 30.0


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Container:
    def __init__(
        self,
        spec: dict[str, Any],
        *,
        pod_dir: Path,
        netns: str,
        cluster_net: str,
        pod_ip: str,
        launch_spec: Callable[[dict[str, Any]], dict[str, Any]],
        restart_policy: str,
        backoff: float,
        changed: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.pod_dir = pod_dir
        self.netns = netns
        self.cluster_net = cluster_net
        self.pod_ip = pod_ip
        self._launch_spec = launch_spec
        self.restart_policy = restart_policy
        self.backoff = backoff
        self._changed = changed
        self.proc: asyncio.subprocess.Process | None = None
        self.restart_count = 0
        self.state: dict[str, Any] = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: dict[str, Any] = {}
        self.started = False
        self.ready = False
        self.stopping = asyncio.Event()
        self.done = asyncio.Event()

    # ---- status ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "image": self.spec["image"],
            "imageID": f"test-kubelet://{self.spec['image']}",
            "containerID": f"test-kubelet://{self.proc.pid}" if self.proc else "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": self.state,
            "lastState": self.last_state,
        }

    def _set(self, **fields: Any) -> None:
        for key, value in fields.items():
            setattr(self, key, value)
        self._changed()

    # ---- life --------------------------------------------------------------------------------

    async def run(self) -> None:
        attempt = 0
        try:
            while not self.stopping.is_set():
                try:
                    code, started_at = await self._run_once()
                except images.UnknownImage as exc:
                    self._set(state={"waiting": {"reason": "ErrImagePull", "message": str(exc)}})
                    await self.stopping.wait()
                    return
                self.last_state = {
                    "terminated": {
                        "exitCode": code if code >= 0 else 128 - code,
                        "reason": "Completed" if code == 0 else "Error",
                        "startedAt": started_at,
                        "finishedAt": now_rfc3339(),
                    }
                }
                if self.stopping.is_set():
                    self._set(state=self.last_state, last_state={}, ready=False, started=False)
                    return
                if self.restart_policy == "Never" or (
                    self.restart_policy == "OnFailure" and code == 0
                ):
                    self._set(state=self.last_state, ready=False, started=False)
                    await self.stopping.wait()
                    return
                delay = min(self.backoff * 2**attempt, MAX_BACKOFF)
                attempt += 1
                log.info(
                    "container %s exited with %s; restarting in %.1f s", self.name, code, delay
                )
                self._set(
                    state={
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {delay:g}s restarting failed container",
                        }
                    },
                    ready=False,
                    started=False,
                )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.stopping.wait()
                if not self.stopping.is_set():
                    self.restart_count += 1
        finally:
            self.done.set()

    async def _run_once(self) -> tuple[int, str]:
        image = images.lookup(self.spec["image"])
        spec = self._launch_spec(self.spec)
        spec["argv"] = images.argv(image, self.spec.get("command"), self.spec.get("args"))
        spec_file = self.pod_dir / f"{self.name}.launch.json"
        spec_file.write_text(json.dumps(spec))
        logfile = open(self.pod_dir / f"{self.name}.log", "ab")  # noqa: SIM115 - owned by the child
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.k8s_e2e.kubelet.launch",
                str(spec_file),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=logfile,
                stderr=logfile,
                cwd=REPO,
                start_new_session=True,
            )
        finally:
            logfile.close()
        (self.pod_dir / f"{self.name}.pid").write_text(str(self.proc.pid))
        started_at = now_rfc3339()
        self._set(state={"running": {"startedAt": started_at}})
        probes = asyncio.create_task(self._probe())
        try:
            code = await self.proc.wait()
        finally:
            probes.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probes
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever it left behind
        return code, started_at

    # ---- probes ------------------------------------------------------------------------------

    async def _probe(self) -> None:
        startup = self.spec.get("startupProbe")
        if startup is not None and not await self._until(startup, want=True):
            await self._kill("startup probe failed")
            return
        self._set(started=True)
        readiness = self.spec.get("readinessProbe")
        liveness = self.spec.get("livenessProbe")
        if readiness is None:
            self._set(ready=True)
        async with asyncio.TaskGroup() as group:
            if readiness is not None:
                group.create_task(self._readiness(readiness))
            if liveness is not None:
                group.create_task(self._liveness(liveness))

    async def _attempt(self, probe: dict[str, Any]) -> bool:
        return await run_probe(probe, self.spec, self.cluster_net, self.pod_ip)

    async def _until(self, probe: dict[str, Any], *, want: bool) -> bool:
        """Probe until it succeeds (True) or fails failureThreshold times in a row (False)."""
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        failures = 0
        while True:
            if await self._attempt(probe) == want:
                return True
            failures += 1
            if failures >= int(probe.get("failureThreshold", 3)):
                return False
            await asyncio.sleep(float(probe.get("periodSeconds", 10)))

    async def _readiness(self, probe: dict[str, Any]) -> None:
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        failures = successes = 0
        while True:
            if await self._attempt(probe):
                failures, successes = 0, successes + 1
                if not self.ready and successes >= int(probe.get("successThreshold", 1)):
                    self._set(ready=True)
            else:
                failures, successes = failures + 1, 0
                if self.ready and failures >= int(probe.get("failureThreshold", 3)):
                    self._set(ready=False)
            await asyncio.sleep(float(probe.get("periodSeconds", 10)))

    async def _liveness(self, probe: dict[str, Any]) -> None:
        await asyncio.sleep(float(probe.get("initialDelaySeconds", 0)))
        failures = 0
        while True:
            failures = 0 if await self._attempt(probe) else failures + 1
            if failures >= int(probe.get("failureThreshold", 3)):
                await self._kill("liveness probe failed")
                return
            await asyncio.sleep(float(probe.get("periodSeconds", 10)))

    async def _kill(self, why: str) -> None:
        log.warning("container %s: %s; killing it", self.name, why)
        await self._signal_and_wait(30.0)

    # ---- stop --------------------------------------------------------------------------------

    async def stop(self, grace: float) -> None:
        """preStop, SIGTERM, wait up to the rest of ``grace``, SIGKILL."""
        deadline = time.monotonic() + grace
        self.stopping.set()
        if self.proc is not None and self.proc.returncode is None:
            pre_stop = (self.spec.get("lifecycle") or {}).get("preStop") or {}
            if "sleep" in pre_stop:
                await asyncio.sleep(min(float(pre_stop["sleep"]["seconds"]), max(grace, 0)))
            elif "httpGet" in pre_stop:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(deadline - time.monotonic(), 0.1)):
                        await self._attempt(
                            {"httpGet": pre_stop["httpGet"], "timeoutSeconds": grace}
                        )
            await self._signal_and_wait(max(deadline - time.monotonic(), 0.0))
        await self.done.wait()

    async def _signal_and_wait(self, grace: float) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
