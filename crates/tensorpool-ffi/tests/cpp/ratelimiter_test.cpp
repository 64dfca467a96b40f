// The rate limiter through the C ABI and tensorpool::RateLimiter: an in-process SHM driver, a
// C++ producer on the source stream, the rate limiter (every 10th sequence) and a C++
// consumer of the destination: it gets exactly the multiples of 10 with the source's bytes.
// A bad configuration is TP_ERR_CONFIG.
#include <tensorpool.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "support.hpp"

namespace tp = tensorpool;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kSource = 10000;
constexpr std::uint32_t kDest = 11000;

TEST(RateLimiter, EveryTenthSequenceReachesTheDestinationWithTheSourceBytes) {
    tpt::TempDir shm{"tp-cpp-ratelimiter-"};
    tp::Context ctx = tp::Context::embedded();
    const std::string driver_toml = "[driver]\ncontrol_channel = \"aeron:ipc?term-length=1m\"\n"
                                    "[shm]\nbase_dir = \"" + shm.path() + "\"\n"
                                    "[policies]\nannounce_period_ms = 50\n"
                                    "shutdown_timeout_ms = 300\nprefault_shm = false\n"
                                    "[profiles.p]\nheader_nslots = 64\npayload_pools = [{ pool_id = 1, stride_bytes = 4096 }]\n"
                                    "[streams.src]\nstream_id = 10000\nprofile = \"p\"\n"
                                    "[streams.dst]\nstream_id = 11000\nprofile = \"p\"\n";
    tp::Driver driver = tp::Driver::start(ctx, driver_toml);
    const std::string ch = "aeron:ipc?term-length=4m";
    const std::string rl_toml = "[rate_limiter]\ninstance_id = \"cpp\"\n"
                                "descriptor_channel = \"" + ch + "\"\ndescriptor_stream_id = 1100\n"
                                "control_channel = \"" + ch + "\"\nqos_channel = \"" + ch + "\"\n"
                                "metadata_channel = \"" + ch + "\"\nshm_base_dir = \"" + shm.path() + "\"\n"
                                "[[mappings]]\nsource_stream_id = 10000\ndest_stream_id = 11000\ndecimation = 10\n";
    {
        tp::RateLimiter rl = tp::RateLimiter::create(ctx, rl_toml, driver.endpoints());
        ASSERT_EQ(rl.mappings(), 1u);
        EXPECT_EQ(rl.counters(0).dest_stream_id, kDest);
        tp::Producer producer(ctx, tp::ProducerOptions(kSource).driver(driver.endpoints(), shm.path()));
        tp::Consumer consumer(ctx, tp::ConsumerOptions(kDest).allowed_base_dir(shm.path()).driver(driver.endpoints()));
        const tp::TensorSpec spec(tp::Dtype::Uint64, {8});
        std::vector<std::uint64_t> seen;
        bool bytes_ok = true;
        std::uint64_t next = 0;
        const auto end = std::chrono::steady_clock::now() + 20s;
        // one source frame per cycle (once the destination consumer is mapped) until the
        // destination has 10 frames
        while (seen.size() < 10) {
            ASSERT_LT(std::chrono::steady_clock::now(), end) << "destination frames: " << seen.size();
            if (consumer.state() == tp::ConsumerState::Mapped) {
                auto claim = producer.claim(spec);
                std::ranges::fill(claim.as<std::uint64_t>(), next);
                claim.commit();
                ++next;
            }
            producer.do_work();
            rl.do_work();
            consumer.poll([&](const tp::Frame& f) {
                seen.push_back(f.seq());
                for (std::uint64_t v : f.values<std::uint64_t>()) bytes_ok = bytes_ok && v == f.seq();
            });
            std::this_thread::sleep_for(1ms);
        }
        ASSERT_FALSE(seen.empty());
        for (std::uint64_t s : seen) EXPECT_EQ(s % 10, 0u) << s;
        EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
        EXPECT_TRUE(bytes_ok) << "the destination carries the source's bytes";
        const tp::RateLimiter::Counters c = rl.counters(0);
        EXPECT_GE(c.forwarded, seen.size());
        EXPECT_GT(c.filtered, 0u);
        EXPECT_EQ(c.torn, 0u);
        try {
            (void)rl.counters(1);
            FAIL() << "mapping 1 of 1";
        } catch (const tp::Error& e) {
            EXPECT_EQ(e.code(), tp::Status::InvalidArgument) << e.what();
        }
    }
    driver.stop(3s);
}

TEST(RateLimiter, ABadConfigurationIsAConfigError) {
    tp::Context ctx = tp::Context::embedded();
    try {
        (void)tp::RateLimiter::create(ctx,
                                      "[rate_limiter]\ninstance_id = \"x\"\ndescriptor_channel = \"aeron:ipc\"\n"
                                      "descriptor_stream_id = 1100\n[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 1\n",
                                      tp::DriverEndpoints());
        FAIL() << "a destination equal to its source accepted";
    } catch (const tp::Error& e) {
        EXPECT_EQ(e.code(), tp::Status::Config) << e.what();
    }
}

}  // namespace
