"""Child process for the signal tests: run an executor in the main thread or a Runner thread,
print READY, exit 0 after a clean stop."""

from __future__ import annotations

import sys

from taktora.actors import Executor, Runner, every, item


def main(mode: str) -> int:
    ex = Executor("child", signals=True)
    ticks = []
    ex.add(item(lambda ctx: ticks.append(1), [every(0.01)], name="tick"))
    print("READY", flush=True)
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
