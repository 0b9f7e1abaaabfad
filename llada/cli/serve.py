"""`llada-serve`: an OpenAI-compatible HTTP server for a LLaDA model, with batching, streaming and a demo page.

Examples:

    llada-serve runs/llada-tinyshakespeare
    llada-serve runs/llada-tinyshakespeare --port 8080 --max_batch_size 16 --torch_threads 2
    llada-serve llada-8b-instruct --device cuda --dtype bfloat16 --served_model_name llada-8b

Endpoints: /v1/completions, /v1/chat/completions, /v1/models, /health, and the live page /demo. Needs the `serve`
extra: pip install "llada-hf[serve]". Ctrl-C (or SIGTERM) stops accepting requests, lets the open ones finish,
then exits.
"""

import argparse
import logging
import signal
import socket
import sys
from pathlib import Path
from typing import List, Optional

import torch

from .common import CLIError, run_main
from .generate import add_device_args, check_device, load_model_and_tokenizer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llada-serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="Saved model folder or Hub id.")
    parser.add_argument("--tokenizer", help="Tokenizer folder or Hub id; defaults to the model.")
    parser.add_argument(
        "--served_model_name",
        help="The model id clients send as `model` (default: MODEL as given, less a trailing /).",
    )
    parser.add_argument(
        "--chat_template",
        metavar="FILE",
        help="A Jinja chat template for /v1/chat/completions, for a tokenizer that has none.",
    )
    parser.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="Load the model through its own code files (needed only for models not of this package).",
    )

    server = parser.add_argument_group("server")
    server.add_argument(
        "--host",
        default="127.0.0.1",
        help="Address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 for every interface).",
    )
    server.add_argument("--port", type=int, default=8000, help="Port (default: 8000).")
    server.add_argument(
        "--max_batch_size",
        type=int,
        default=32,
        help="Rows decoded together at most; also the largest `n` of a request (default: 32).",
    )
    server.add_argument(
        "--batch_window_ms",
        type=float,
        default=20.0,
        help="Milliseconds an idle server waits after a request for others to batch with it (default: 20).",
    )
    server.add_argument(
        "--max_queue",
        type=int,
        default=256,
        help="Prompts waiting at most; beyond, requests are answered 429 (default: 256).",
    )
    server.add_argument(
        "--shutdown_timeout",
        type=float,
        default=60.0,
        help="Seconds the open requests have to finish at shutdown (default: 60).",
    )
    server.add_argument(
        "--log_level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="Log level; `info` logs one line per request (default).",
    )

    runtime = add_device_args(parser.add_argument_group("runtime"))
    runtime.add_argument(
        "--torch_threads", type=int, help="Threads of torch's CPU operations (default: torch's own choice)."
    )
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Runs the command; a bad input ends in one line on stderr and exit status 2 (see `llada.cli.common`)."""
    return run_main("llada-serve", _main, argv)


def _main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    for flag, value, minimum in (
        ("--max_batch_size", args.max_batch_size, 1),
        ("--max_queue", args.max_queue, 1),
        ("--port", args.port, 0),
        ("--torch_threads", args.torch_threads or 1, 1),
    ):
        if value < minimum:
            raise CLIError(f"{flag} must be >= {minimum}, got {value}.")
    if args.batch_window_ms < 0:
        raise CLIError(f"--batch_window_ms must be >= 0, got {args.batch_window_ms}.")
    try:
        import uvicorn

        from ..serving import create_app
    except ImportError as error:
        raise CLIError(
            f'llada-serve needs the `serve` extra (FastAPI and uvicorn): pip install "llada-hf[serve]" '
            f"({error.name} is missing)."
        ) from None
    check_address(args.host, args.port)  # the cheap checks first: a busy port fails before the model loads
    chat_template = read_chat_template(args.chat_template)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    device = check_device(args.device)
    model, tokenizer = load_model_and_tokenizer(args, device)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    logging.getLogger("llada.serving").setLevel(args.log_level.upper())
    name = args.served_model_name or args.model.rstrip("/") or args.model
    app = create_app(
        model,
        tokenizer,
        name,
        max_batch_size=args.max_batch_size,
        batch_window=args.batch_window_ms / 1000,
        max_queue=args.max_queue,
        shutdown_timeout=args.shutdown_timeout,
    )
    print(
        f"llada-serve: model {name!r} at http://{args.host}:{args.port}/v1 (demo page: "
        f"http://{args.host}:{args.port}/demo)",
        file=sys.stderr,
    )
    # uvicorn shuts down gracefully on SIGINT / SIGTERM, then raises the signal again: SIGTERM then ends here too
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            access_log=False,
            timeout_graceful_shutdown=args.shutdown_timeout,
        )
    except KeyboardInterrupt:
        pass
    return 0


def read_chat_template(path: Optional[str]) -> Optional[str]:
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise CLIError(f"--chat_template: cannot read {path!r} ({why}).") from None


def check_address(host: str, port: int) -> None:
    """`--host` / `--port` must be an address this machine can listen on, and free."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise CLIError(f"--host {host!r} is not an address of this machine ({error.strerror}).") from None
    family, kind, _, _, address = infos[0]
    with socket.socket(family, kind) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as error:
            raise CLIError(
                f"--host {host} --port {port}: cannot listen there ({error.strerror}); is another "
                "server running on that port?"
            ) from None


if __name__ == "__main__":
    raise SystemExit(main())
