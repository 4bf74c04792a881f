"""Child process for the signal tests: run an executor in the main thread or a Runner thread,
print READY once the executor is running (its first tick has run, so its signal handling is in
place), exit 0 after a clean stop."""

from __future__ import annotations

import sys

from taktora.actors import Executor, Runner, every, item


def main(mode: str) -> int:
    ex = Executor("child", signals=True)
    ticks = []

    def tick(ctx: object) -> None:
        if not ticks:
            print("READY", flush=True)
        ticks.append(1)

    ex.add(item(tick, [every(0.01)], name="tick"))
    if mode == "main":
        ex.run()
        ex.close()
    else:
        runner = Runner(ex).start()
        runner.join()
    print(f"STOPPED signal={ex.last_signal} ticks={len(ticks) > 0}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
