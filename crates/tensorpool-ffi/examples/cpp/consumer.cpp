// Consumes the producer example's frames: prints shape, dtype and the mean pixel of one
// frame per second, with the drop counters; the C++ twin of
// crates/tensorpool/examples/consumer.rs. Start the producer example first. Optional
// arguments: seconds to run (default: forever), then the number of printed frames after which
// to stop early; exits 1 if no frame arrived in time.
#include <tensorpool.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

namespace tp = tensorpool;
using Clock = std::chrono::steady_clock;

constexpr const char* kAeronDir = "/dev/shm/tensorpool-example-aeron";
constexpr const char* kShmDir = "/dev/shm/tensorpool-example";

int main(int argc, char** argv) try {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line, also into a pipe or file
    const auto end = argc > 1 ? Clock::now() + std::chrono::seconds(std::stoll(argv[1])) : Clock::time_point::max();
    const std::uint64_t enough = argc > 2 ? std::stoull(argv[2]) : UINT64_MAX;
    tp::Context ctx = tp::Context::connect(kAeronDir);
    tp::Consumer consumer(ctx, tp::ConsumerOptions(10000).allowed_base_dir(kShmDir));
    auto last_print = Clock::now() - std::chrono::seconds(1);
    std::uint64_t printed = 0;
    while (Clock::now() < end && printed < enough) {
        const std::size_t work = consumer.poll([&](const tp::Frame& frame) {
            if (Clock::now() - last_print < std::chrono::seconds(1)) return;
            // Read in place, then recheck: only then are the bytes the committed frame.
            std::uint64_t sum = 0;
            for (std::uint16_t px : frame.values<std::uint16_t>()) sum += px;
            if (!frame.recheck()) return;
            last_print = Clock::now();
            std::size_t n = 1;
            for (std::size_t d : frame.shape()) n *= d;
            const tp::ConsumerCounters c = consumer.counters();
            std::printf("frame %llu: [%zu, %zu] %s, mean %llu; accepted %llu, dropped %llu, gaps %llu\n",
                        static_cast<unsigned long long>(frame.seq()), frame.shape()[0], frame.shape()[1],
                        tp::dtype_name(frame.dtype()).data(), static_cast<unsigned long long>(sum / n),
                        static_cast<unsigned long long>(c.accepted), static_cast<unsigned long long>(c.drops_total),
                        static_cast<unsigned long long>(c.drops_gap));
            ++printed;
        });
        if (work == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return printed > 0 ? 0 : 1;
} catch (const tp::Error& e) {
    std::fprintf(stderr, "consumer: %s (%s)\n", e.what(), tp::status_name(e.code()).data());
    return 1;
}
