// Signals and waiting (issue 18 items 2 and 4) through tensorpool.hpp and tensorpool.h:
// consumer events, frame counts, poll_wait, wait_for_consumers, the Runner (its threading
// rules: also run under TSan by scripts/cpp-tsan) and the media driver's loss with a real
// `tp media-driver` process SIGKILLed.
#include <tensorpool.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "support.hpp"

namespace tp = tensorpool;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kStream = 10000;

struct World {
    tpt::TempDir shm{"tp-cpp-signals-"};
    tp::Context ctx = tp::Context::embedded();

    tp::ProducerOptions producer_options() const {
        return tp::ProducerOptions(kStream).standalone(shm.path()).header_nslots(16).pool(1, 64 * 1024).prefault(false)
            .announce_period(50ms);
    }
    tp::ConsumerOptions consumer_options() const { return tp::ConsumerOptions(kStream).allowed_base_dir(shm.path()); }
};

/// Polls (and runs `p` if given) until an event of `kind` arrives; returns every event seen.
std::vector<tp::ConsumerEvent> wait_event(tp::Consumer& c, tp::Producer* p, tp::EventKind kind) {
    std::vector<tp::ConsumerEvent> seen;
    const auto end = std::chrono::steady_clock::now() + 20s;
    for (;;) {
        while (auto e = c.next_event()) {
            seen.push_back(*e);
            if (e->kind == kind) return seen;
        }
        if (std::chrono::steady_clock::now() > end) {
            ADD_FAILURE() << "no event " << static_cast<int>(kind) << " (" << seen.size() << " others)";
            return seen;
        }
        std::size_t w = c.poll([](const tp::Frame&) {});
        if (p) w += p->do_work();
        if (w == 0) std::this_thread::sleep_for(200us);
    }
}

const tp::TensorSpec& spec() {
    static const tp::TensorSpec s(tp::Dtype::Uint8, {256});
    return s;
}

}  // namespace

TEST(Events, MappedEpochChangedAndUnmapped) {
    World w;
    auto p = std::make_unique<tp::Producer>(w.ctx, w.producer_options());
    tp::Consumer c(w.ctx, w.consumer_options().activity_timeout(500ms));
    const std::uint64_t first = p->epoch();
    auto seen = wait_event(c, p.get(), tp::EventKind::Mapped);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen[0].epoch, first);

    const std::uint64_t second = p->bump_epoch();
    seen = wait_event(c, p.get(), tp::EventKind::EpochChanged);
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back().from_epoch, first);
    EXPECT_EQ(seen.back().epoch, second);

    p.reset();  // closes: files removed, activity stops
    seen = wait_event(c, nullptr, tp::EventKind::Unmapped);
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.back().kind, tp::EventKind::Unmapped);
    EXPECT_EQ(seen.back().epoch, second);
    EXPECT_NE(seen.back().reason, tp::UnmapReason::None);
    EXPECT_EQ(c.events_lost(), 0u);
    EXPECT_FALSE(c.media_driver_lost());
}

TEST(Events, CArgumentsAreChecked) {
    tp_consumer_event e{};
    bool got = true;
    EXPECT_EQ(tp_consumer_next_event(nullptr, &e, &got), TP_ERR_NULL);
    EXPECT_EQ(tp_runner_lock(nullptr), TP_ERR_NULL);
    EXPECT_EQ(tp_runner_free(nullptr), TP_OK);
    EXPECT_EQ(tp::status_name(tp::Status::MediaDriverLost), "TP_ERR_MEDIA_DRIVER_LOST");
    World w;
    tp::Consumer c(w.ctx, w.consumer_options());
    EXPECT_EQ(tp_consumer_next_event(c.get(), nullptr, &got), TP_ERR_NULL);
    EXPECT_EQ(tp_consumer_next_event(c.get(), &e, &got), TP_OK);
    EXPECT_FALSE(got) << "no poll yet: no event";
    EXPECT_EQ(tp_consumer_poll_wait(c.get(), nullptr, nullptr, 16, 0, nullptr), TP_ERR_NULL);
}

TEST(Poll, FramesAreCountedAndPollWaitReturnsOnTheFirst) {
    World w;
    tp::Producer p(w.ctx, w.producer_options());
    tp::Consumer c(w.ctx, w.consumer_options());
    const auto end = std::chrono::steady_clock::now() + 20s;
    while (c.state() != tp::ConsumerState::Mapped || p.counters().consumers == 0) {
        ASSERT_LT(std::chrono::steady_clock::now(), end);
        if (c.poll([](const tp::Frame&) {}) + p.do_work() == 0) std::this_thread::sleep_for(200us);
    }
    // nothing published: the wait ends at its timeout without a frame
    EXPECT_EQ(c.poll_wait([](const tp::Frame&) {}, 20ms), 0u);

    std::vector<std::byte> payload(256, std::byte{9});
    for (int i = 0; i < 3; ++i) p.offer(spec(), payload);
    std::size_t got = 0;
    while (got < 3) {
        ASSERT_LT(std::chrono::steady_clock::now(), end);
        const std::size_t n = c.poll_wait([](const tp::Frame& f) { EXPECT_EQ(f.bytes()[0], std::byte{9}); }, 20s);
        EXPECT_GE(n, 1u) << "poll_wait returned before its timeout without a frame";
        got += n;
    }
    EXPECT_EQ(got, 3u);

    p.offer(spec(), payload);
    std::size_t frames = 0;
    while (frames == 0) {
        ASSERT_LT(std::chrono::steady_clock::now(), end);
        tp::Polled r = c.poll_frames([](const tp::Frame&) {});
        EXPECT_GE(r.work, r.frames);
        frames += r.frames;
    }
    EXPECT_EQ(frames, 1u);
    EXPECT_EQ(c.counters().accepted, 4u);
    // a throwing handler: the exception comes out of poll_wait
    p.offer(spec(), payload);
    EXPECT_THROW(c.poll_wait([](const tp::Frame&) { throw std::runtime_error("x"); }, 20s), std::runtime_error);
}

// The consumer on a Runner thread, the producer waiting for it: no frame lost at start.
TEST(WaitForConsumers, ThenNoFrameIsLostToUnmapped) {
    World w;
    tp::Producer p(w.ctx, w.producer_options());
    EXPECT_EQ(p.mapped_consumers(), 0u);
    auto r = p.try_wait_for_consumers(1, 10ms);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), tp::Status::Timeout);

    tp::Consumer c(w.ctx, w.consumer_options());
    std::atomic<std::uint64_t> delivered{0};
    std::atomic<std::uint64_t> bad{0};
    std::vector<std::uint64_t> seqs;  // plain memory: handler and with() take turns
    tp::Runner runner = tp::Runner::start(c, [&](const tp::Frame& f) {
        seqs.push_back(f.seq());
        std::vector<std::uint8_t> copy(f.bytes().size());
        const auto* b = reinterpret_cast<const std::uint8_t*>(f.bytes().data());
        std::copy(b, b + copy.size(), copy.begin());
        if (f.recheck() && !tpt::verify_payload(copy, f.seq())) bad.fetch_add(1);
        delivered.fetch_add(1);
    });
    EXPECT_EQ(p.wait_for_consumers(1, 20s), 1u);
    EXPECT_EQ(runner.with([&] { return c.state(); }), tp::ConsumerState::Mapped);

    constexpr std::uint64_t kFrames = 300;
    for (std::uint64_t seq = 0; seq < kFrames; ++seq) {
        tp::Claim claim = p.claim(spec());
        tpt::fill_payload(std::span<std::uint8_t>(reinterpret_cast<std::uint8_t*>(claim.bytes().data()),
                                                  claim.bytes().size()),
                          seq);
        claim.commit();
        p.do_work();
        const auto end = std::chrono::steady_clock::now() + 20s;
        while (delivered.load() + 8 < seq) {  // stay within the 16-slot ring
            ASSERT_LT(std::chrono::steady_clock::now(), end) << "consumer stuck at " << seq;
            std::this_thread::sleep_for(100us);
        }
    }
    const auto end = std::chrono::steady_clock::now() + 20s;
    while (delivered.load() < kFrames) {
        ASSERT_LT(std::chrono::steady_clock::now(), end) << delivered.load() << " of " << kFrames;
        std::this_thread::sleep_for(1ms);
    }
    runner.rethrow();
    EXPECT_EQ(runner.errors(), 0u);
    EXPECT_GT(runner.cycles(), 0u);
    runner.with([&] {
        ASSERT_EQ(seqs.size(), kFrames);
        for (std::uint64_t i = 0; i < kFrames; ++i) EXPECT_EQ(seqs[i], i);
        EXPECT_EQ(c.counter("drops.unmapped"), 0u);
        EXPECT_EQ(c.counters().drops_total, 0u);
        EXPECT_EQ(c.counters().accepted, kFrames);
    });
    EXPECT_EQ(bad.load(), 0u);
    runner.stop();
    // the handle is the caller's again
    EXPECT_EQ(c.state(), tp::ConsumerState::Mapped);
}

// The producer on a Runner thread (announces, hellos), claims from this thread inside with().
TEST(Runner, DrivesAProducerWhileAnotherThreadClaims) {
    World w;
    tp::Producer p(w.ctx, w.producer_options());
    tp::Consumer c(w.ctx, w.consumer_options());
    tp::Runner runner = tp::Runner::start(p, "sleep:200us");
    {
        tp_runner* raw = runner.get();
        auto held = runner.lock();
        EXPECT_EQ(tp_runner_lock(raw), TP_ERR_STATE) << "locked twice";
    }
    EXPECT_EQ(tp_runner_unlock(runner.get()), TP_ERR_STATE) << "not locked";
    c.wait_mapped(20s);
    std::vector<std::byte> payload(256, std::byte{5});
    std::atomic<bool> stop{false};
    // another thread reads the runner's counts meanwhile
    std::thread reader([&] {
        while (!stop.load()) {
            (void)runner.cycles();
            (void)runner.with([&] { return p.counters().committed; });
            std::this_thread::sleep_for(100us);
        }
    });
    std::size_t got = 0;
    const auto end = std::chrono::steady_clock::now() + 20s;
    for (int i = 0; i < 20; ++i) {
        runner.with([&] { p.offer(spec(), payload); });
        while (got <= static_cast<std::size_t>(i)) {
            ASSERT_LT(std::chrono::steady_clock::now(), end);
            got += c.poll_wait([](const tp::Frame&) {}, 100ms);
        }
    }
    stop.store(true);
    reader.join();
    EXPECT_EQ(got, 20u);
    EXPECT_EQ(runner.errors(), 0u);
    EXPECT_EQ(runner.last_error().code(), tp::Status::Ok);
    runner.stop();
    EXPECT_EQ(p.counters().committed, 20u);
}

// A real media driver process, SIGKILLed: both sides report Status::MediaDriverLost.
TEST(MediaDriverLoss, BothSidesReportIt) {
    tpt::TempDir dirs{"tp-cpp-mdloss-"};
    const std::string aeron = dirs.sub("aeron");
    tpt::Child driver({tpt::tp_binary(), "media-driver", "--dir", aeron}, dirs.sub("driver.log"));
    tp::Context ctx = tp::Context::connect_with(aeron, 20s, 1000ms);
    tp::Producer p(ctx, tp::ProducerOptions(kStream).standalone(dirs.sub("shm")).header_nslots(16).pool(1, 4096)
                            .prefault(false).announce_period(50ms));
    tp::Consumer c(ctx, tp::ConsumerOptions(kStream).allowed_base_dir(dirs.sub("shm")));
    std::vector<std::byte> payload(256, std::byte{1});
    std::size_t got = 0;
    auto end = std::chrono::steady_clock::now() + 20s;
    while (got == 0) {
        ASSERT_LT(std::chrono::steady_clock::now(), end) << driver.output();
        p.do_work();
        if (c.state() == tp::ConsumerState::Mapped && p.counters().consumers > 0) p.offer(spec(), payload);
        got += c.poll_wait([](const tp::Frame&) {}, 20ms);
    }
    EXPECT_FALSE(p.media_driver_lost());
    EXPECT_EQ(driver.wait(0ms), -1) << "SIGKILLed";

    bool producer_lost = false, consumer_lost = false;
    end = std::chrono::steady_clock::now() + 20s;
    while (!producer_lost || !consumer_lost) {
        ASSERT_LT(std::chrono::steady_clock::now(), end) << "producer " << producer_lost << " consumer " << consumer_lost;
        if (!producer_lost) {
            tp_status s = tp_producer_do_work(p.get(), 0, nullptr);
            if (s == TP_ERR_MEDIA_DRIVER_LOST) producer_lost = true;
            else ASSERT_EQ(s, TP_OK) << tp_last_error();
        }
        if (!consumer_lost) {
            auto r = c.try_poll([](const tp::Frame&) {});
            if (!r.ok()) {
                ASSERT_EQ(r.code(), tp::Status::MediaDriverLost) << r.error().what();
                consumer_lost = true;
            }
        }
        std::this_thread::sleep_for(10ms);
    }
    EXPECT_TRUE(p.media_driver_lost());
    EXPECT_TRUE(c.media_driver_lost());
    auto claim = p.try_claim(spec());
    ASSERT_FALSE(claim.ok());
    EXPECT_EQ(claim.code(), tp::Status::MediaDriverLost);
    std::vector<tp::EventKind> kinds;
    while (auto e = c.next_event()) kinds.push_back(e->kind);
    ASSERT_FALSE(kinds.empty());
    EXPECT_EQ(kinds.back(), tp::EventKind::MediaDriverLost);
}
