// The bridge through tensorpool::Bridge: an in-process SHM driver, a C++ producer on the
// source stream, one bridge instance running both halves over loopback UDP, and a C++
// consumer of the destination stream: the destination frames carry the source's sequences
// and bytes, and the counters say what crossed. A bad configuration or bad options are
// errors with a message.
#include <tensorpool.hpp>

#include <gtest/gtest.h>
#include <unistd.h>

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

/// Two UDP ports on loopback unique to this process (payload, control).
int base_port() { return 21000 + static_cast<int>(::getpid() % 4000) * 2; }

std::string bridge_toml(int port, const std::string& extra = {}) {
    return "[bridge]\ninstance_id = \"cpp\"\n"
           "payload_channel = \"aeron:udp?endpoint=127.0.0.1:" + std::to_string(port) + "\"\n"
           "payload_stream_id = 3000\n"
           "control_channel = \"aeron:udp?endpoint=127.0.0.1:" + std::to_string(port + 1) + "\"\n"
           "control_stream_id = 3001\nintegrity_crc32c = true\n" + extra +
           "[[mappings]]\nsource_stream_id = 10000\ndest_stream_id = 11000\nprofile = \"p\"\n";
}

TEST(Bridge, FramesCrossLoopbackUdpToTheDestinationWithTheSourceBytes) {
    tpt::TempDir shm{"tp-cpp-bridge-"};
    tp::Context ctx = tp::Context::embedded();
    const std::string driver_toml = "[driver]\ncontrol_channel = \"aeron:ipc?term-length=1m\"\n"
                                    "[shm]\nbase_dir = \"" + shm.path() + "\"\n"
                                    "[policies]\nannounce_period_ms = 50\n"
                                    "shutdown_timeout_ms = 300\nprefault_shm = false\n"
                                    "[profiles.p]\nheader_nslots = 64\npayload_pools = [{ pool_id = 1, stride_bytes = 4096 }]\n"
                                    "[streams.src]\nstream_id = 10000\nprofile = \"p\"\n"
                                    "[streams.dst]\nstream_id = 11000\nprofile = \"p\"\n";
    tp::Driver driver = tp::Driver::start(ctx, driver_toml);
    {
        tp::Bridge bridge = tp::Bridge::create(
            ctx, bridge_toml(base_port()),
            tp::BridgeOptions().side(tp::BridgeSide::Both).shm_base_dir(shm.path()).driver(driver.endpoints()));
        ASSERT_EQ(bridge.mappings(), 1u);
        EXPECT_EQ(bridge.mapping(0).source_stream_id, kSource);
        EXPECT_EQ(bridge.mapping(0).dest_stream_id, kDest);
        tp::Producer producer(ctx, tp::ProducerOptions(kSource).driver(driver.endpoints(), shm.path()));
        tp::Consumer consumer(ctx, tp::ConsumerOptions(kDest).allowed_base_dir(shm.path()).driver(driver.endpoints()));
        const tp::TensorSpec spec(tp::Dtype::Uint64, {8});
        std::vector<std::uint64_t> seen;
        bool bytes_ok = true;
        const auto end = std::chrono::steady_clock::now() + 30s;
        // one source frame per cycle (once the destination consumer is mapped) until the
        // destination has 10 frames
        while (seen.size() < 10) {
            ASSERT_LT(std::chrono::steady_clock::now(), end)
                << "destination frames: " << seen.size() << ", bridge frames sent "
                << bridge.counters().frames_sent << " received " << bridge.counters().frames_received;
            if (consumer.state() == tp::ConsumerState::Mapped) {
                auto claim = producer.claim(spec);
                std::ranges::fill(claim.as<std::uint64_t>(), claim.seq());
                claim.commit();
            }
            producer.do_work();
            bridge.do_work();
            consumer.poll([&](const tp::Frame& f) {
                seen.push_back(f.seq());
                for (std::uint64_t v : f.values<std::uint64_t>()) bytes_ok = bytes_ok && v == f.seq();
            });
            std::this_thread::sleep_for(1ms);
        }
        EXPECT_TRUE(std::is_sorted(seen.begin(), seen.end()));
        EXPECT_TRUE(bytes_ok) << "the destination carries the source's bytes under the source's sequence";
        const tp::Bridge::Counters c = bridge.counters();
        EXPECT_GE(c.frames_sent, seen.size());
        EXPECT_GE(c.chunks_sent, c.frames_sent);
        EXPECT_GE(c.frames_received, seen.size());
        EXPECT_GE(c.announces_forwarded, 1u);
        EXPECT_GE(c.announces_received, 1u);
        EXPECT_EQ(c.crc_errors, 0u);
        EXPECT_EQ(c.header_drops, 0u);
        try {
            (void)bridge.mapping(1);
            FAIL() << "mapping 1 of 1";
        } catch (const tp::Error& e) {
            EXPECT_EQ(e.code(), tp::Status::InvalidArgument) << e.what();
            EXPECT_NE(std::string(e.what()).find("mapping 1"), std::string::npos) << e.what();
        }
    }
    driver.stop(3s);
}

TEST(Bridge, ABadConfigurationOrBadOptionsAreErrorsWithAMessage) {
    tp::Context ctx = tp::Context::embedded();
    try {
        // no payload_channel
        (void)tp::Bridge::create(ctx, "[bridge]\ninstance_id = \"x\"\npayload_stream_id = 1\n"
                                      "[[mappings]]\nsource_stream_id = 1\ndest_stream_id = 2\nprofile = \"p\"\n");
        FAIL() << "a bridge without a payload channel accepted";
    } catch (const tp::Error& e) {
        EXPECT_EQ(e.code(), tp::Status::Config) << e.what();
        EXPECT_NE(std::string(e.what()).find("bridge.payload_channel"), std::string::npos) << e.what();
    }
    try {
        (void)tp::Bridge::create(ctx, "this is not = = TOML");
        FAIL() << "not TOML accepted";
    } catch (const tp::Error& e) {
        EXPECT_EQ(e.code(), tp::Status::Config) << e.what();
    }
    try {
        (void)tp::Bridge::create_file(ctx, "/nonexistent/tp-bridge.toml");
        FAIL() << "a missing file accepted";
    } catch (const tp::Error& e) {
        EXPECT_EQ(e.code(), tp::Status::Config) << e.what();
    }
    try {
        (void)tp::Bridge::create(ctx, bridge_toml(base_port()), tp::BridgeOptions().shm_base_dir("relative/dir"));
        FAIL() << "a relative shm_base_dir accepted";
    } catch (const tp::Error& e) {
        EXPECT_EQ(e.code(), tp::Status::InvalidArgument) << e.what();
    }
}

}  // namespace
