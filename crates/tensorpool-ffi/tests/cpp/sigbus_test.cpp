// Issue 12 from C++: region files truncated under a live consumer never kill the process.
// A C++ consumer reads every byte of every frame of a standalone producer (same process, C++
// API) while another thread truncates the header ring or the pool at a random moment, to 0
// or to a short page-aligned size. After each truncation the process is alive, no frame whose
// recheck passed has wrong bytes, and the consumer unmaps with the region-dead cause (or, when
// the producer's own write hit the truncated pool first, its frames stop being committed and
// nothing at all is accepted from the dead epoch); then the producer bumps its epoch and the
// consumer maps the new one. TP_SIGBUS_TRUNCATIONS=N sets the number of truncations (1000).
#include <tensorpool.hpp>

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace tp = tensorpool;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kStream = 10012;
constexpr std::uint32_t kSlots = 32;  // ring: 64 + 32 * 256 bytes, three pages
constexpr std::uint32_t kStride = 4096;  // pool: 64 + 32 * 4096 bytes
constexpr std::size_t kPage = 4096;

struct Rng {
    std::uint64_t s;
    std::uint64_t next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }
    std::uint64_t below(std::uint64_t n) { return next() % n; }
};

std::uint64_t truncations_wanted() {
    const char* v = std::getenv("TP_SIGBUS_TRUNCATIONS");
    if (v == nullptr || *v == '\0') return 1000;
    return std::strtoull(v, nullptr, 10);
}

}  // namespace

TEST(Sigbus, TruncationUnderALiveCppConsumerIsSurvivedAndNothingWrongIsAccepted) {
    const std::uint64_t wanted = truncations_wanted();
    tpt::TempDir shm{"tp-cpp-sigbus-"};
    tp::Context ctx = tp::Context::embedded();
    tp::Producer producer(ctx, tp::ProducerOptions(kStream)
                                   .standalone(shm.path())
                                   .header_nslots(kSlots)
                                   .pool(1, kStride)
                                   .prefault(false)
                                   .announce_period(20ms));
    tp::Consumer consumer(ctx, tp::ConsumerOptions(kStream).allowed_base_dir(shm.path()));
    const tp::TensorSpec spec(tp::Dtype::Uint8, {kStride});
    const std::uint64_t seed = 0x5151'2012'0000'0001ull ^ static_cast<std::uint64_t>(::getpid());
    Rng rng{seed};
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::vector<std::uint8_t> copy(kStride);

    std::uint64_t accepted = 0, wrong = 0, consumer_dead = 0, producer_first = 0, read_after_recheck_failed = 0;
    const auto started = std::chrono::steady_clock::now();
    for (std::uint64_t round = 0; round < wanted; ++round) {
        const std::uint64_t epoch = producer.epoch();
        // Mapped at this epoch, with at least one frame through.
        const auto mapped_by = std::chrono::steady_clock::now() + 10s;
        std::uint64_t seen = 0;
        auto handler = [&](const tp::Frame& f) {
            // Every byte, then the recheck: only then do the bytes count.
            const auto b = f.bytes();
            ASSERT_EQ(b.size(), kStride);
            std::memcpy(copy.data(), b.data(), b.size());
            if (!f.recheck()) {
                ++read_after_recheck_failed;
                return;
            }
            ++accepted;
            ++seen;
            if (!tpt::verify_payload(copy, f.seq())) ++wrong;
        };
        auto step = [&] {
            tp::Claim c = producer.claim(spec);
            tpt::fill_payload(c.as<std::uint8_t>(), c.seq());
            c.commit();
            producer.do_work();
            (void)consumer.poll(handler);
        };
        while (!(consumer.state() == tp::ConsumerState::Mapped && consumer.status().epoch == epoch && seen > 0)) {
            ASSERT_LT(std::chrono::steady_clock::now(), mapped_by)
                << "round " << round << ": not mapped at epoch " << epoch << ": " << consumer.mapping_error();
            step();
            std::this_thread::sleep_for(50us);
        }

        // The truncation, at a random moment, of a random file, to 0 or a short page-aligned size.
        const bool pool = rng.below(2) == 1;
        const std::string path = producer.epoch_dir() + (pool ? "/1.pool" : "/header.ring");
        const std::size_t file_pages = pool ? (64 + kSlots * kStride) / kPage : (64 + kSlots * 256) / kPage;
        const off_t len = static_cast<off_t>(rng.below(2) == 0 ? 0 : rng.below(file_pages) * kPage);
        const auto delay = std::chrono::microseconds(rng.below(2000));
        std::atomic<bool> truncated{false};
        std::jthread cutter([&] {
            std::this_thread::sleep_for(delay);
            const int rc = ::truncate(path.c_str(), len);
            EXPECT_EQ(rc, 0) << path;
            truncated.store(true, std::memory_order_release);
        });

        const std::uint64_t dead_before = consumer.counter("unmaps_dead");
        std::uint64_t drops_mark = 0, accepted_mark = 0;
        bool cut_seen = false;
        const auto end = std::chrono::steady_clock::now() + 20s;
        bool done = false;
        while (!done) {
            ASSERT_LT(std::chrono::steady_clock::now(), end)
                << "round " << round << ": no end after truncating " << path << " to " << len;
            step();
            if (!cut_seen && truncated.load(std::memory_order_acquire)) cut_seen = true;
            if (cut_seen && (accepted != accepted_mark || drops_mark == 0)) {
                // Drops counted from the last frame accepted after the truncation.
                drops_mark = consumer.counters().drops_total + 1;
                accepted_mark = accepted;
            }
            if (consumer.counter("unmaps_dead") > dead_before) {
                ++consumer_dead;
                EXPECT_EQ(consumer.state(), tp::ConsumerState::Unmapped);
                const auto r = consumer.last_rejection();
                EXPECT_EQ(r.epoch, epoch);
                EXPECT_EQ(r.reason.rfind("region_dead", 0), 0u) << r.reason;
                done = true;
            } else if (cut_seen && pool && consumer.counters().drops_total >= drops_mark + 2 * kSlots) {
                // The producer's write reached the truncated pool first: its mapping is dead,
                // nothing is committed any more (every descriptor is dropped), and the consumer
                // never reads the truncated pages. The epoch is over all the same.
                ++producer_first;
                done = true;
            }
        }
        cutter.join();
        ASSERT_EQ(wrong, 0u) << "round " << round << ": a frame with wrong bytes was accepted";
        producer.bump_epoch();
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    std::printf("sigbus: %llu truncations in %lld ms: consumer unmapped region_dead %llu, producer's write first %llu; "
                "%llu frames accepted, %llu failed their recheck\n",
                static_cast<unsigned long long>(wanted), static_cast<long long>(ms.count()),
                static_cast<unsigned long long>(consumer_dead), static_cast<unsigned long long>(producer_first),
                static_cast<unsigned long long>(accepted), static_cast<unsigned long long>(read_after_recheck_failed));
    EXPECT_EQ(wrong, 0u);
    EXPECT_EQ(consumer_dead + producer_first, wanted);
    if (wanted >= 10) {
        EXPECT_GT(consumer_dead, 0u);
    }
    EXPECT_GE(consumer.counter("drops.region_dead") + consumer.counter("unmaps_dead"), consumer_dead);
}
