// Produces 480x640 u16 frames at 100 Hz into shared memory (standalone: no SHM driver), the
// C++ twin of crates/tensorpool/examples/producer.rs. It also runs the Aeron media driver the
// consumer example connects to. Optional argument: the number of frames (default: forever).
// Ctrl-C (or SIGTERM) ends it cleanly: its files are removed on the way out.
#include <tensorpool.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

namespace tp = tensorpool;

constexpr const char* kAeronDir = "/dev/shm/tensorpool-example-aeron";
constexpr const char* kShmDir = "/dev/shm/tensorpool-example";

namespace {
volatile std::sig_atomic_t stop = 0;
void on_signal(int) { stop = 1; }
}  // namespace

int main(int argc, char** argv) try {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line, also into a pipe or file
    const std::uint64_t frames = argc > 1 ? std::stoull(argv[1]) : UINT64_MAX;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    tp::Context ctx = tp::Context::embedded(kAeronDir);
    tp::Producer producer(ctx, tp::ProducerOptions(10000).standalone(kShmDir));
    const tp::TensorSpec spec(tp::Dtype::Uint16, {480, 640});
    std::printf("producing on stream 10000, epoch %llu; Ctrl-C to stop\n",
                static_cast<unsigned long long>(producer.epoch()));

    const auto period = std::chrono::milliseconds(10);
    auto next = std::chrono::steady_clock::now();
    for (std::uint64_t i = 0; i < frames && !stop; ++i) {
        // Claim a slot, write the tensor in place, commit: zero copy.
        tp::Claim claim = producer.claim(spec);
        std::uint16_t j = 0;
        for (std::uint16_t& px : claim.as<std::uint16_t>()) px = static_cast<std::uint16_t>(i) + j++;
        const std::uint64_t seq = claim.commit();
        if (seq % 100 == 0)
            std::printf("frame %llu, consumers: %llu\n", static_cast<unsigned long long>(seq),
                        static_cast<unsigned long long>(producer.counters().consumers));
        // Announces, QoS and consumer hellos, until the next frame is due (at least once:
        // a producer running late, e.g. in a sanitized build, still announces itself).
        next += period;
        do {
            producer.do_work();
            std::this_thread::sleep_for(std::chrono::microseconds(500));
        } while (std::chrono::steady_clock::now() < next);
    }
    return 0;
} catch (const tp::Error& e) {
    std::fprintf(stderr, "producer: %s (%s)\n", e.what(), tp::status_name(e.code()).data());
    return 1;
}
