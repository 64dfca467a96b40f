"""Produces 480x640 u16 frames at 100 Hz (standalone) and runs the Aeron media driver the
consumer example connects to. Run this, then consumer.py in another terminal."""

import numpy as np
import tensorpool as tp

AERON_DIR = "/dev/shm/tensorpool-example-aeron"
SHM_DIR = "/dev/shm/tensorpool-example"

ctx = tp.Context.embedded(AERON_DIR)
producer = tp.Producer(ctx, 10_000, base_dir=SHM_DIR, header_nslots=16, stride_bytes=640 * 1024)
ramp = np.arange(640, dtype=np.uint16)
for i in range(1_000_000):
    with producer.claim((480, 640), "u16") as claim:  # commits on exit
        claim.array[:] = ramp + i  # written straight into shared memory: zero copy
    if i % 100 == 0:
        print(f"frame {claim.seq}, consumers: {producer.consumer_count}")
    producer.work_for(0.01)  # announces, QoS, consumer hellos (GIL released)
