"""Consumes the producer example's frames: the mean pixel of one frame per second, read in
place (zero copy), with the drop counters. Start producer.py first."""

import time

import tensorpool as tp

ctx = tp.Context.connect("/dev/shm/tensorpool-example-aeron")
consumer = tp.Consumer(ctx, 10_000, allowed_base_dir="/dev/shm/tensorpool-example")
last, report = 0.0, []


def on_frame(frame: tp.Frame) -> None:
    if time.monotonic() - last < 1.0:
        return
    mean = float(frame.array.mean())  # reads the slot itself
    if frame.recheck():  # only now is `mean` the committed frame's
        report.append(f"frame {frame.seq}: {frame.shape} {frame.dtype}, mean {mean:.1f}")


while True:
    work = consumer.poll(on_frame, 16)  # the consumer's own methods: outside the callback
    if report:
        last = time.monotonic()
        print(f"{report[-1]}; accepted {consumer.counters()['accepted']}, "
              f"dropped {consumer.drops()['total']}, state {consumer.state}")
        report.clear()
    if work == 0:
        time.sleep(0.0002)
