"""Run ``hubctl serve``: check the bind rule, verify the lock once, bind, then serve with uvicorn while the
pipeline loads once in the background.

Owns the order of start-up (a public host without a token is refused first; then the lock is found (``--lock``,
``--script`` (refused when the script and its lock disagree) or ./hubctl.lock) and verified exactly as
``hubctl generate`` verifies it, before any socket is bound; then the socket; then uvicorn, with the pipeline
loading in a thread and ``/v1/health`` answering 503 until it is ready) and turning a failed load into the
CLI's one-line error once uvicorn has stopped. Never prints or logs the token.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import Any, Callable

from hubctl.errors import BadInput, Refused
from hubctl.serve.config import Limits, check_bind, is_loopback, token_from_env

__all__ = ["serve", "lock_for", "bind"]


def lock_for(lock: str | None, script: str | None) -> tuple[Any, Path]:
    """The lock to serve and its path: ``--lock``, ``--script S.py`` (S.py.lock, which must agree with the
    script's inline block) or ``./hubctl.lock`` / ``$HUBCTL_LOCK``."""
    from hubctl.run.generate import find_lock, read_lock

    if lock and script:
        raise BadInput("--lock and --script name two locks: give one")
    if not script:
        path = find_lock(lock)
        return read_lock(path), path
    from hubctl.lock.project import read_script

    project = read_script(Path(script))
    path = project.lock_path
    if not path.is_file():
        raise BadInput(f"{path}: no lock for {Path(script).name} (run `hubctl lock --script {script}`)")
    lk = read_lock(path)  # refused here when the script's inline block and its lock disagree
    return lk, path


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port); BadInput naming the address when the OS
    refuses."""
    if not 0 <= port <= 65535:
        raise BadInput(f"--port {port}: expected 0 to 65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise BadInput(f"--host {host}: cannot resolve it ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise BadInput(f"{host}:{port}: cannot listen there ({e.strerror or e})") from None
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(*, lock: str | None = None, script: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          out_dir: str = "hubctl-out", device: str = "auto", dtype: str = "auto", attention: str = "auto",
          limits: Limits | None = None, access_log: bool = False, say: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted. Raises BadInput (bad options, a public host without a token, a busy port),
    Refused (verification failed, or the pipeline could not load)."""
    say = say or (lambda line: print(line, file=sys.stderr, flush=True))
    limits = (limits or Limits()).check()
    if not 0 <= port <= 65535:
        raise BadInput(f"--port {port}: expected 0 to 65535")
    token = token_from_env()
    check_bind(host, token)
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise BadInput(f"hubctl serve needs {e.name}: pip install 'hubctl[serve]'") from None
    from hubctl.run.verify import verify_locked_set
    from hubctl.serve.app import ServeState, create_app

    lk, lock_path = lock_for(lock, script)
    vset = verify_locked_set(lk)  # as `hubctl generate` does: nothing is bound or loaded before this passes
    for w in vset.warnings:
        say(f"warning: {w}")
    sock = bind(host, port)
    url = _url(sock)
    out = Path(out_dir).resolve()
    state = ServeState(vset=vset, out_dir=out, limits=limits, token=token, lock_path=str(lock_path), device=device,
                       dtype=dtype, attention=attention)
    app = create_app(state)
    config = uvicorn.Config(app, log_level="info" if access_log else "warning", access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=10, server_header=False, proxy_headers=False)
    server = uvicorn.Server(config)

    def fatal() -> None:
        server.should_exit = True

    def ready(loaded: Any) -> None:
        t = loaded.timings
        say(f"ready: {vset.base.label} on {loaded.asm.device} {loaded.asm.dtype}, attention {loaded.asm.attention.backend} "
            f"(verify {t['verify']:.2f} s, load {t['load']:.2f} s)")

    state.on_fatal, state.on_ready = fatal, ready
    auth = "bearer token required" if token else "no token (loopback only)"
    # stdout: one line a program can read to learn the address (with --port 0, the port the OS chose)
    print(f"hubctl serve: {url}/ (lock {Path(lock_path).name} {vset.lock_digest[:12]}, {auth}, images in {out})", flush=True)
    if not is_loopback(host):
        say(f"listening on a public address {host}: every /v1 request needs 'Authorization: Bearer <token>'")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if state.load_error is not None:
        e = state.load_error
        if isinstance(e, (BadInput, Refused)):
            raise e
        raise Refused(f"the pipeline could not load ({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})")
