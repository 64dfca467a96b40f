// Cross-language runs in separate processes, with the checksummed payloads of `tp produce` /
// `tp consume --verify` (seq + CRC32C, implemented independently in support.hpp):
//   this C++ process produces  -> `tp consume --verify` (Rust) checks every frame;
//   `tp produce` (Rust)        -> this C++ process consumes and checks every frame.
// This process hosts the Aeron media driver (an embedded one in a known directory).
#include <tensorpool.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "support.hpp"

namespace tp = tensorpool;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kFrameBytes = 65536;

std::span<std::uint8_t> as_u8(std::span<std::byte> b) { return {reinterpret_cast<std::uint8_t*>(b.data()), b.size()}; }
std::span<const std::uint8_t> as_u8(std::span<const std::byte> b) {
    return {reinterpret_cast<const std::uint8_t*>(b.data()), b.size()};
}

}  // namespace

TEST(CrossLanguage, ChecksumConventionMatchesTheRustVectors) {
    // CRC32C("123456789") = 0xE3069283 (the standard check value).
    const std::string digits = "123456789";
    EXPECT_EQ(tpt::crc32c({reinterpret_cast<const std::uint8_t*>(digits.data()), digits.size()}), 0xE3069283u);
    std::vector<std::uint8_t> buf(100);
    tpt::fill_payload(buf, 42);
    EXPECT_TRUE(tpt::verify_payload(buf, 42));
    EXPECT_FALSE(tpt::verify_payload(buf, 43));
    buf[50] ^= 1;
    EXPECT_FALSE(tpt::verify_payload(buf, 42));
}

TEST(CrossLanguage, CppProducerToRustConsumerVerifies) {
    ASSERT_TRUE(std::filesystem::exists(tpt::tp_binary())) << tpt::tp_binary();
    tpt::TempDir work{"tp-cpp-x1-"}, shm{"tp-cpp-x1-shm-"};
    const std::string aeron = work.sub("aeron");
    tp::Context ctx = tp::Context::embedded(aeron);
    tp::Producer producer(ctx, tp::ProducerOptions(10000).standalone(shm.path()).header_nslots(64)
                                   .pool(1, kFrameBytes).announce_period(100ms));
    const tp::TensorSpec spec(tp::Dtype::Uint8, {kFrameBytes});
    tpt::Child consumer({tpt::tp_binary(), "consume", "--aeron-dir", aeron, "--allowed-base-dir", shm.path(),
                         "--verify", "--count", "300", "--duration", "40", "--json"},
                        work.sub("consume.log"));
    const auto end = std::chrono::steady_clock::now() + 45s;
    while (!consumer.done() && std::chrono::steady_clock::now() < end) {
        tp::Claim claim = producer.claim(spec);
        tpt::fill_payload(as_u8(claim.bytes()), claim.seq());
        claim.commit();
        producer.do_work();
        std::this_thread::sleep_for(1ms);
    }
    const int status = consumer.wait(5s);
    const std::string out = consumer.output();
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("\"corrupt\":0"), std::string::npos) << out;
    EXPECT_NE(out.find("\"accepted\":300"), std::string::npos) << out;
    EXPECT_GE(producer.counters().committed, 300u);
}

TEST(CrossLanguage, RustProducerToCppConsumerVerifies) {
    ASSERT_TRUE(std::filesystem::exists(tpt::tp_binary())) << tpt::tp_binary();
    tpt::TempDir work{"tp-cpp-x2-"}, shm{"tp-cpp-x2-shm-"};
    const std::string aeron = work.sub("aeron");
    tp::Context ctx = tp::Context::embedded(aeron);
    tp::Consumer consumer(ctx, tp::ConsumerOptions(10000).allowed_base_dir(shm.path()));
    tpt::Child producer({tpt::tp_binary(), "produce", "--standalone", "--aeron-dir", aeron, "--shm-base-dir",
                         shm.path(), "--size", std::to_string(kFrameBytes), "--nslots", "512", "--rate", "300", "--count", "600",
                         "--linger", "0.5"},
                        work.sub("produce.log"));
    std::uint64_t verified = 0, corrupt = 0, late = 0;
    auto check = [&](const tp::Frame& f) {
        const bool ok = tpt::verify_payload(as_u8(f.bytes()), f.seq());
        if (!f.recheck()) {
            ++late;  // overwritten while read: not a verdict on the payload
            return;
        }
        ++(ok ? verified : corrupt);
        EXPECT_EQ(f.dtype(), tp::Dtype::Uint8);
        EXPECT_EQ(f.shape()[0], kFrameBytes);
    };
    const auto end = std::chrono::steady_clock::now() + 30s;
    while (!producer.done() && std::chrono::steady_clock::now() < end) {
        if (consumer.poll(check, 64) == 0) std::this_thread::sleep_for(200us);
    }
    for (int i = 0; i < 50; ++i) (void)consumer.poll(check, 64);
    const int status = producer.wait(5s);
    EXPECT_EQ(status, 0) << producer.output();
    EXPECT_EQ(corrupt, 0u);
    EXPECT_GE(verified, 300u) << "late " << late << "; " << producer.output();
    EXPECT_EQ(consumer.counters().accepted, verified);
}
