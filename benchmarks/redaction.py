"""Cost of redaction: whole outputs (MB/s) and streamed text (overhead per chunk).

Run: python benchmarks/redaction.py [--sizes 10 100]

20 secret-named variables of realistic shapes (API keys, tokens, passwords with
shell and URL special characters, a URL password); the text is log-like lines
with a few secrets sprinkled in, so the scan also pays for replacements.
"""

from __future__ import annotations

import argparse
import random
import string
import time

from nbagent.redact import Redactor, StreamRedactor, secret_values, url_password_contexts


def make_environ(n: int = 20) -> dict[str, str]:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits
    environ: dict[str, str] = {}
    for i in range(n - 2):
        token = "".join(rng.choice(alphabet) for _ in range(rng.randint(20, 60)))
        environ[f"SERVICE_{i}_API_KEY"] = rng.choice(["sk-", "ghp_", "xoxb-", ""]) + token
    environ["MY_PASSWORD"] = "p@ss w'rd/" + "".join(rng.choice(alphabet) for _ in range(8))
    environ["DATABASE_URL"] = "postgres://user:hunter2@db.internal:5432/app"
    return environ


def make_text(size: int, secrets: list[str]) -> str:
    rng = random.Random(3)
    words = "the of and to in is for on that with as by at from total rows mean std".split()
    lines: list[str] = []
    length = 0
    while length < size:
        if rng.random() < 0.001:
            line = f"token={rng.choice(secrets)}"
        else:
            line = " ".join(rng.choice(words) for _ in range(12)) + f" {rng.random():.6f}"
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines)[:size]


def bench_whole(redactor: Redactor, secrets: list[str], megabytes: int) -> None:
    for label, sprinkled in (("with secrets", secrets), ("clean", [])):
        text = make_text(megabytes * 1_000_000, sprinkled or ["no secret here"])
        wall, cpu = time.perf_counter(), time.process_time()
        out = redactor.redact(text)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert not any(s in out for s in secrets)
        print(
            f"redact {megabytes:>4} MB {label:<12}: {megabytes / cpu:6.1f} MB/s CPU"
            f" ({cpu:.3f} s; wall {wall:.3f} s)  {out.count('[redacted:')} replacements"
        )


def bench_stream(redactor: Redactor, secrets: list[str], chunk_size: int, total: int) -> None:
    text = make_text(total, secrets)
    chunks = [text[i : i + chunk_size] for i in range(0, len(text), chunk_size)]
    stream = StreamRedactor(redactor)
    cpu = time.process_time()
    out = [stream.feed(chunk) for chunk in chunks]
    out.append(stream.flush())
    cpu = time.process_time() - cpu
    assert "".join(out) == redactor.redact(text)
    print(
        f"stream {len(chunks):>7} chunks of {chunk_size:>3} chars: "
        f"{cpu / len(chunks) * 1e6:6.2f} µs CPU per chunk  ({total / 1e6 / cpu:5.1f} MB/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 100])
    args = parser.parse_args()
    environ = make_environ()
    values = secret_values(environ, {}, [])
    redactor = Redactor(values, url_password_contexts(environ, {}, []))
    secrets = list(values)
    print(
        f"{len(values)} secrets, {len(redactor.replacements)} printed forms, "
        f"longest {redactor.max_form_length} chars"
    )
    start = time.perf_counter()
    Redactor(values, url_password_contexts(environ, {}, []))
    print(f"build redactor: {(time.perf_counter() - start) * 1e3:.2f} ms")
    for megabytes in args.sizes:
        bench_whole(redactor, secrets, megabytes)
    for chunk_size in (5, 40, 400):
        bench_stream(redactor, secrets, chunk_size, 2_000_000)


if __name__ == "__main__":
    main()
