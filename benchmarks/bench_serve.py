"""Load check of `llada-serve` on loopback: batched throughput under concurrent clients against the same requests
one at a time, latency percentiles and errors.

The server runs in a process of its own (`python -m llada.cli.serve`, one torch thread, 127.0.0.1 only). Every
client is a thread that sends its fixed list of requests one after the other; all clients start together. The same
requests are first sent one at a time (one client), which is the baseline of the throughput ratio; the requests of
the 16-client run are the first 16 clients' of the 32-client run, so one sequential pass serves both ratios. The
passes alternate over `--repeats` rounds (benchmarks/common.py) and the median round counts. Every
request has its own seed, so a request's text must not depend on its batch: the table counts the texts identical to
the one-at-a-time run.

Without `--model` the model is a randomly initialised one of the main job's size (the `main` preset: hidden 128, 4
layers, 4 heads, intermediate 384, full attention, 128 positions) with a 4096-token BPE trained on the bundled
TinyShakespeare and the sampler defaults the main job saves with its model (`sample_*` in
`llada/configs/tinyshakespeare.yaml`), saved to a temporary folder: speed does not depend on the weights.

    python benchmarks/bench_serve.py                      # 16 and 32 clients, 3 requests each, two rounds: minutes
    python benchmarks/bench_serve.py --model runs/llada-tinyshakespeare --requests_per_client 4
    python benchmarks/bench_serve.py --clients 2 --requests_per_client 1 --repeats 1 --max_tokens 8 --output ''
"""

import argparse
import functools
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

import common


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="A saved model folder (default: a random one of the main job's size).")
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 32], help="Concurrent clients of each run.")
    parser.add_argument("--requests_per_client", type=int, default=3)
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="Rounds, each a one-at-a-time pass and every client count (alternated); the median round counts.",
    )
    parser.add_argument("--max_tokens", type=int, default=64, help="Tokens per request (a multiple of the block).")
    parser.add_argument("--max_batch_size", type=int, default=32, help="The server's --max_batch_size.")
    parser.add_argument("--batch_window_ms", type=float, default=20.0, help="The server's --batch_window_ms.")
    parser.add_argument(
        "--time_limit",
        type=float,
        default=300.0,
        help="Seconds for each pass at most; requests not sent by then are reported as not run.",
    )
    common.add_common_args(parser, output=common.RESULTS / "serve.md")  # --threads: the server's too (--torch_threads)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


# the sampler defaults a main-job model saves (`sample_NAME` in its YAML file)
SAMPLER_DEFAULTS = ("max_new_tokens", "block_length", "remasking", "temperature", "top_p")


def build_random_model(folder: Path) -> Path:
    """The main job's architecture and sampling defaults with random weights, and a BPE trained on the corpus."""
    from llada.training.tokenizers import build_bpe_tokenizer

    corpus = common.CORPUS.read_text(encoding="utf-8")
    tokenizer = build_bpe_tokenizer(corpus.splitlines(), vocab_size=4096, show_progress=False)
    main_job = common.MAIN_JOB
    model = common.random_model(
        "main",
        vocab_size=len(tokenizer),
        block_size=main_job.get("block_size"),
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    generation = model.generation_config
    for name in SAMPLER_DEFAULTS:
        setattr(generation, name, main_job[f"sample_{name}"])
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def prompts(count: int):
    """`count` prompts: TinyShakespeare line starts of varied lengths."""
    lines = [line for line in common.CORPUS.read_text(encoding="utf-8").splitlines() if len(line) > 40]
    return [lines[(97 * index) % len(lines)][: 20 + (index * 7) % 40] for index in range(count)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args, model: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(common.ROOT)}
    command = [
        sys.executable,
        "-m",
        "llada.cli.serve",
        model,
        "--served_model_name",
        "bench",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--torch_threads",
        str(args.threads),
        "--max_batch_size",
        str(args.max_batch_size),
        "--batch_window_ms",
        str(args.batch_window_ms),
        "--log_level",
        "warning",
    ]
    server = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"llada-serve exited: {server.stderr.read()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("llada-serve did not start within 180 s")


def run_clients(url: str, plans, deadline: float):
    """Each plan (a list of request bodies) is one client thread sending its requests in order; the clients connect
    first and then start together. Returns one `(latency, text, completion_tokens, error, batch rows)` per request
    (None for a request not sent before the deadline) and the wall time."""
    results = [[None] * len(plan) for plan in plans]
    clients = [httpx.Client(base_url=url, timeout=600) for _ in plans]
    start_together = threading.Barrier(len(plans) + 1)

    def client(index):
        http = clients[index]
        start_together.wait()
        for number, body in enumerate(plans[index]):
            if time.time() > deadline:
                return
            start = time.perf_counter()
            try:
                response = http.post("/v1/completions", json=body)
                latency = time.perf_counter() - start
                if response.status_code != 200:
                    results[index][number] = (latency, None, 0, f"HTTP {response.status_code}", 0)
                    continue
                data = response.json()
                results[index][number] = (
                    latency,
                    data["choices"][0]["text"],
                    data["usage"]["completion_tokens"],
                    None,
                    int(response.headers.get("x-batch-rows", 0)),
                )
            except httpx.HTTPError as error:
                results[index][number] = (time.perf_counter() - start, None, 0, type(error).__name__, 0)

    threads = [threading.Thread(target=client, args=(index,)) for index in range(len(plans))]
    for thread in threads:
        thread.start()
    start_together.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    for http in clients:
        http.close()
    return results, wall


def percentile(values, fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main(argv=None) -> int:
    args = parse_args(argv)
    common.setup(args)
    workdir = tempfile.mkdtemp(prefix="bench_serve_")
    model = args.model or str(build_random_model(Path(workdir) / "model"))
    most = max(args.clients)
    texts = prompts(most * args.requests_per_client)
    plans = [
        [
            {
                "model": "bench",
                "prompt": texts[c * args.requests_per_client + r],
                "max_tokens": args.max_tokens,
                "seed": c * args.requests_per_client + r,
            }
            for r in range(args.requests_per_client)
        ]
        for c in range(most)
    ]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(args, model, port)
    alone, concurrent = [], {clients: [] for clients in args.clients}

    def one_at_a_time():
        sequential, _ = run_clients(url, [[body for plan in plans for body in plan]], time.time() + args.time_limit)
        alone.append(sequential[0])
        print(f"one at a time, {most * args.requests_per_client} requests", flush=True)

    def together(clients):
        results, wall = run_clients(url, plans[:clients], time.time() + args.time_limit)
        concurrent[clients].append(([result for plan in results for result in plan], wall))
        print(f"{clients} clients, {wall:.1f} s", flush=True)

    try:
        run_clients(url, [plans[0][:1], plans[1 % most][:1]], time.time() + 120)  # warm-up, not counted
        passes = {
            "one at a time": one_at_a_time,
            **{f"{clients} clients": functools.partial(together, clients) for clients in args.clients},
        }
        common.time_alternated(passes, args.repeats)  # the rounds; the times come from the requests' own clocks
    finally:
        server.terminate()
        server.wait(120)
    rows = [
        summarise(clients, concurrent[clients], [run[: clients * args.requests_per_client] for run in alone])
        for clients in args.clients
    ]
    print("\n".join(common.markdown_table(rows, COLUMNS, FORMATS)))
    write_serve_report(args, model, rows)
    return 0


def summarise(clients: int, runs, alone_runs) -> dict:
    """One table row from the concurrent runs `(results, wall)` and the one-at-a-time runs of the same requests:
    throughput the median round of each (requests answered / wall time; one at a time: / the sum of their
    latencies), latencies, batch sizes, errors and texts over every round."""
    ok_runs = [[result for result in results if result is not None and result[3] is None] for results, _ in runs]
    throughput = statistics.median(len(ok) / wall for ok, (_, wall) in zip(ok_runs, runs))
    alone_rates = [
        len(run) / sum(result[0] for result in run)
        for run in alone_runs
        if all(result is not None and result[3] is None for result in run)
    ]
    alone_throughput = statistics.median(alone_rates) if alone_rates else float("nan")
    ok = [result for run in ok_runs for result in run]
    requests = sum(len(results) for results, _ in runs)
    errors = sum(1 for results, _ in runs for result in results if result is not None and result[3] is not None)
    not_run = sum(1 for results, _ in runs for result in results if result is None)
    reference = [result[1] if result is not None else None for result in alone_runs[0]]
    same = sum(
        1
        for results, _ in runs
        for result, text in zip(results, reference)
        if result is not None and result[3] is None and result[1] == text
    )
    latencies = [result[0] for result in ok]
    alone_latencies = [result[0] for run in alone_runs for result in run if result is not None and result[3] is None]
    tokens = statistics.median(sum(result[2] for result in run) / wall for run, (_, wall) in zip(ok_runs, runs))
    return dict(
        clients=clients,
        requests=f"{len(runs[0][0])} x {len(runs)}",
        throughput=throughput,
        tokens=tokens,
        alone=alone_throughput,
        ratio=throughput / alone_throughput,
        p50=percentile(latencies, 0.5),
        p95=percentile(latencies, 0.95),
        p50_alone=percentile(alone_latencies, 0.5),
        batch_rows=statistics.mean(r[4] for r in ok) if ok else float("nan"),
        errors=errors,
        not_run=not_run,
        same=f"{same}/{requests}",
    )


COLUMNS = {
    "clients": "clients",
    "requests": "requests x rounds",
    "throughput": "requests/s",
    "tokens": "tokens/s",
    "alone": "requests/s one at a time",
    "ratio": "throughput vs one at a time",
    "p50": "p50 latency s",
    "p95": "p95 latency s",
    "p50_alone": "p50 one at a time s",
    "batch_rows": "mean batch rows",
    "errors": "errors",
    "not_run": "not run",
    "same": "same text as alone",
}
FORMATS = {
    "throughput": ".2f",
    "tokens": ".0f",
    "alone": ".2f",
    "ratio": lambda x: f"**{x:.2f}x**",
    "p50": ".2f",
    "p95": ".2f",
    "p50_alone": ".2f",
    "batch_rows": ".1f",
}


def write_serve_report(args, model: str, rows) -> None:
    import torch

    main_job, size = common.MAIN_JOB, common.MAIN
    block_size = main_job.get("block_size")
    attention = f"block diffusion with blocks of {block_size}" if block_size else "full attention"
    sampling = ", ".join(f"{name} {main_job[f'sample_{name}']}" for name in SAMPLER_DEFAULTS)
    described = (
        f"a randomly initialised model of the main job's size (hidden {size['hidden_size']}, "
        f"{size['num_hidden_layers']} layers, {size['num_attention_heads']} heads, intermediate "
        f"{size['intermediate_size']}, {attention}, {size['max_position_embeddings']} positions, 4096-token BPE "
        "trained on the bundled TinyShakespeare) with the sampler defaults the main job saves "
        f"({sampling}): not a trained model, speed does not depend on the weights"
        if not args.model
        else f"`{model}`"
    )
    command = " ".join(["python benchmarks/bench_serve.py", *args.argv])
    intro = [
        f"Model: {described}. Each request: a TinyShakespeare line start (20 to 59 characters), "
        f"`max_tokens={args.max_tokens}`, its own `seed`. Server: `llada-serve` in its own process on 127.0.0.1, "
        f"{args.threads} torch thread(s), `--max_batch_size {args.max_batch_size}`, `--batch_window_ms "
        f"{args.batch_window_ms:g}`. Clients: threads of the benchmark process, each sending "
        f"{args.requests_per_client} requests one after the other, all starting together. One at a time: the same "
        "requests from one client, one after the other (the throughput ratio's baseline; latencies are end to end; "
        "a request alone waits the batch window for companions before it starts, and that wait is in its figures). "
        f"{args.repeats} rounds, each a one-at-a-time pass and every client count, alternated: the throughputs are "
        "each contender's median round; latencies, batch sizes, errors and texts cover every round.",
        f"Machine: {os.cpu_count()} CPU cores, {platform.machine()}, torch {torch.__version__}; load average at the "
        f"end {os.getloadavg()[0]:.1f} (other jobs may share the cores). Command: `{command}`",
    ]
    notes = [
        "Mean batch rows: the rows of the batch each request was decoded in (the `X-Batch-Rows` header), "
        "averaged over the requests. Same text as alone: the seeded request's text equals the one it got sent "
        "one at a time (a batch does not change a row's sample)."
    ]
    written = common.write_report(
        args.output,
        rows,
        title="llada-serve under load (loopback)",
        intro=intro,
        columns=COLUMNS,
        formats=FORMATS,
        notes=notes,
        meta=dict(vars(args), model=model),
    )
    if written:
        print(f"Wrote {written}")


if __name__ == "__main__":
    raise SystemExit(main())
