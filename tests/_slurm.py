"""A real single-node SLURM cluster on localhost, with accounting, for tests.

Installs Debian's slurm-wlm, slurmdbd, munge and mariadb-server with apt when they are
absent (CI machines are fresh, root, apt reachable), writes slurm.conf and slurmdbd.conf into
a temporary directory, starts munged, a private mariadbd, slurmdbd, slurmctld and slurmd, and
stops exactly those processes (by their PIDs) at the end. Nothing is written to /etc except
what the packages install; the system's munge key is reused (created when missing).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _util import apt_lock

PACKAGES = ["slurm-wlm", "slurmdbd", "munge", "mariadb-server"]
BINARIES = ["sbatch", "sacct", "sacctmgr", "slurmctld", "slurmd", "slurmdbd", "munged", "mariadbd"]
CLUSTER = "curvmia"
ACCOUNT = "curvmia"
NODE = "localhost"
PARTITION = "debug"
# A second partition on the same node whose jobs preempt the default partition's (SLURM
# requeues a preempted job submitted with --requeue: PreemptMode=REQUEUE, JobRequeue=0).
HIGH_PARTITION = "high"


class SlurmUnavailable(RuntimeError):
    """SLURM cannot be installed or started on this machine."""


def _run(cmd: list[str], env: dict | None = None, timeout: float = 120) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        msg = f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        raise SlurmUnavailable(msg)
    return proc.stdout


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]


def ensure_installed() -> float:
    """apt-get install the packages when a binary is missing; returns the seconds it took."""
    if not missing_binaries():
        return 0.0
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise SlurmUnavailable(f"missing {missing_binaries()}; cannot apt-get install (not root)")
    t0 = time.monotonic()
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with apt_lock():  # another test worker may be installing (Chromium) at the same time
        if missing_binaries():
            _run(["apt-get", "update", "-qq"], env=env, timeout=300)
            _run(
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES],
                env=env,
                timeout=600,
            )
    if missing_binaries():
        raise SlurmUnavailable(f"still missing after apt-get install: {missing_binaries()}")
    return time.monotonic() - t0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(check, what: str, timeout: float, log: Path | None = None) -> None:
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        if check():
            return
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise SlurmUnavailable(f"{what} did not come up within {timeout:.0f} s\n{tail}")


def _munge_works() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        check = subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return cred.returncode == 0 and check.returncode == 0


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Cluster:
    """Configuration files and daemons of one test cluster under `root`."""

    def __init__(self, root: Path):
        self.root = root
        self.pids: dict[str, int] = {}
        self.ports = {name: _free_port() for name in ("ctld", "slurmd", "dbd", "mysql")}
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        # Slurm's clients talk to munged at its default socket; a working munged is reused.
        self.munge_socket = Path("/run/munge/munge.socket.2")

    # configuration -------------------------------------------------------------------
    def write_configs(self) -> None:
        r = self.root
        for sub in ("state", "spool", "log", "munge", "db"):
            (r / sub).mkdir(parents=True, exist_ok=True)
        p = self.ports
        # The node claims 32 CPUs / 128 GB and 4 GPUs (config_overrides; the GPUs are a
        # generic resource whose "devices" are empty files, below): the paper configs'
        # requests (ImageNet: 16 CPUs, 64 GB, 1 GPU per training job) must be schedulable here.
        self.conf.write_text(
            f"""ClusterName={CLUSTER}
SlurmctldHost={NODE}(127.0.0.1)
SlurmctldPort={p["ctld"]}
SlurmdPort={p["slurmd"]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
SlurmctldParameters=enable_configless
ReturnToService=2
MaxArraySize=1001
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={p["dbd"]}
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
AccountingStoreFlags=job_comment
GresTypes=gpu
AccountingStorageTRES=gres/gpu
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
JobRequeue=0
KillWait=5
NodeName={NODE} NodeAddr=127.0.0.1 CPUs=32 RealMemory=128000 Gres=gpu:4 State=UNKNOWN
PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
PartitionName={HIGH_PARTITION} Nodes={NODE} PriorityTier=10 MaxTime=INFINITE State=UP
"""
        )
        # slurmd 22.05 drops file-less GPUs ("Removing file-less GPU"): each GPU is an empty
        # regular file here, no device, so CUDA is unusable. Batch steps of --gpus jobs see no
        # GPU variable (22.05): curvmia.device reads the job's GPU from scontrol.
        for i in range(4):
            (r / f"gpu{i}").touch()
        (r / "gres.conf").write_text(f"Name=gpu File={r}/gpu[0-3]\n")
        dbd = r / "slurmdbd.conf"
        dbd.write_text(
            f"""AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={p["dbd"]}
SlurmUser=root
PidFile={r}/slurmdbd.pid
LogFile={r}/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={p["mysql"]}
StorageUser=root
StorageLoc=slurm_acct_db
"""
        )
        dbd.chmod(0o600)

    # daemons -------------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str], log: Path) -> subprocess.Popen:
        fh = open(log, "ab")  # noqa: SIM115 - the daemon owns it
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=self.env, start_new_session=True
        )
        self.pids[name] = proc.pid
        return proc

    def _start_munged(self, key: Path) -> None:
        r = self.root
        # munged runs in the foreground (-F) so that its PID is ours to stop.
        self._spawn(
            "munged",
            [
                "munged",
                "-F",
                "--force",
                f"--socket={self.munge_socket}",
                f"--pid-file={r}/munge/munged.pid",
                f"--seed-file={r}/munge/munged.seed",
                f"--log-file={r}/log/munged.log",
                f"--key-file={key}",
            ],
            r / "log" / "munged.out",
        )
        _wait_for(self.munge_socket.exists, "munged", 20, r / "log" / "munged.out")

    def start(self) -> None:
        r = self.root
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            _run(["mungekey", "--create", "--keyfile", str(key)])
        if not _munge_works():
            self.munge_socket.parent.mkdir(parents=True, exist_ok=True)
            self.munge_socket.unlink(missing_ok=True)
            self._start_munged(key)

        db = r / "db"
        _run(
            [
                "mariadb-install-db",
                "--user=root",
                f"--datadir={db}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            timeout=120,
        )
        self._spawn(
            "mariadbd",
            [
                "mariadbd",
                "--no-defaults",
                "--user=root",
                f"--datadir={db}",
                f"--socket={r}/mysql.sock",
                f"--pid-file={r}/mysql.pid",
                "--bind-address=127.0.0.1",
                f"--port={self.ports['mysql']}",
                "--innodb-buffer-pool-size=64M",
                "--skip-log-bin",
            ],
            r / "log" / "mariadbd.log",
        )
        mysql_up = lambda: _port_open(self.ports["mysql"])  # noqa: E731
        _wait_for(mysql_up, "mariadbd", 60, r / "log" / "mariadbd.log")

        self._spawn("slurmdbd", ["slurmdbd", "-D"], r / "log" / "slurmdbd.out")
        _wait_for(lambda: _port_open(self.ports["dbd"]), "slurmdbd", 60, r / "log" / "slurmdbd.log")
        # As on a real cluster: the cluster, an account and the user's association exist
        # before jobs are submitted (AccountingStorageEnforce=associations).
        _run(["sacctmgr", "-i", "add", "cluster", CLUSTER], env=self.env)
        _run(["sacctmgr", "-i", "add", "account", ACCOUNT, f"cluster={CLUSTER}"], env=self.env)
        user = os.environ.get("USER") or "root"
        _run(
            ["sacctmgr", "-i", "add", "user", user, f"account={ACCOUNT}", f"cluster={CLUSTER}"],
            env=self.env,
        )

        self._spawn("slurmctld", ["slurmctld", "-D", "-i"], r / "log" / "slurmctld.out")
        ctld_up = lambda: _port_open(self.ports["ctld"])  # noqa: E731
        _wait_for(ctld_up, "slurmctld", 60, r / "log" / "slurmctld.log")
        # Configless slurmd, as on many clusters: it fetches slurm.conf from slurmctld and caches
        # it under /run/slurm/conf, where job steps (the plugin's nested srun, which runs
        # without SLURM_CONF) find it.
        self._spawn(
            "slurmd",
            ["slurmd", "-D", "-N", NODE, "--conf-server", f"127.0.0.1:{self.ports['ctld']}"],
            r / "log" / "slurmd.out",
        )

        def node_idle() -> bool:
            out = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=self.env
            ).stdout
            return out.strip().startswith("idle")

        _wait_for(node_idle, "slurmd (node idle)", 60, r / "log" / "slurmd.log")

    def stop(self) -> None:
        """Stop the daemons this cluster started, newest first, by PID."""
        for name in reversed(list(self.pids)):
            pid = self.pids[name]
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            t_end = time.monotonic() + 15
            while time.monotonic() < t_end:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    break
                time.sleep(0.2)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        self.pids.clear()
        link = Path("/run/slurm/conf")
        if link.is_symlink() and str(self.root) in os.readlink(link):
            link.unlink()

    def sacct_jobs(self) -> list[dict[str, str]]:
        """All jobs (not steps) accounting recorded, as dicts of the sacct fields."""
        fields = ["JobID", "JobName", "State", "ExitCode", "Account", "Comment", "Partition"]
        fields += ["ReqTRES"]
        out = _run(
            ["sacct", "-a", "-X", "-n", "-P", f"--format={','.join(fields)}", "-S", "now-1hours"],
            env=self.env,
        )
        rows = [line.split("|") for line in out.splitlines() if line]
        return [dict(zip(fields, row, strict=True)) for row in rows]


@contextmanager
def running_cluster(root: Path) -> Iterator[Cluster]:
    """A started cluster; its daemons are stopped on exit, also when the run is terminated."""

    def terminated(signum, frame):
        raise SystemExit(f"terminated by signal {signum}")

    previous = signal.signal(signal.SIGTERM, terminated)
    cluster = Cluster(root)
    cluster.write_configs()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        signal.signal(signal.SIGTERM, previous)
