// The supervisor through the C ABI and tensorpool::Supervisor: built from a configuration
// file, a few duty cycles, then a hello from a C++ consumer answered with a ConsumerConfig.
#include <tensorpool.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>

#include "support.hpp"

namespace tp = tensorpool;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kStream = 10000;

TEST(Supervisor, BuiltFromAFileRunsAndAnswersAHello) {
    tpt::TempDir dir{"tp-cpp-supervisor-"};
    const std::string cfg = dir.path() + "/supervisor.toml";
    {
        std::ofstream f(cfg);
        f << "[supervisor]\nconsumer_capacity = 16\nforce_mode = \"RATE_LIMITED\"\n";
    }
    tp::Context ctx = tp::Context::embedded();
    tp::Supervisor sup = tp::Supervisor::create_file(ctx, cfg);
    for (int i = 0; i < 10; ++i) sup.do_work();
    EXPECT_EQ(sup.counters().consumers, 0u);

    tp::Consumer consumer(ctx, tp::ConsumerOptions(kStream).allowed_base_dir(dir.path()).consumer_id(77));
    const auto end = std::chrono::steady_clock::now() + 20s;
    tp::Supervisor::Counters c{};
    while (true) {
        sup.do_work();
        consumer.poll([](const tp::Frame&) {});
        c = sup.counters();
        if (c.hellos >= 1 && c.configs_sent >= 1 && c.forced_mode >= 1) break;
        ASSERT_LT(std::chrono::steady_clock::now(), end) << "no hello answered: hellos " << c.hellos;
        std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(c.consumers, 1u);
}

TEST(Supervisor, ABadConfigurationIsAConfigError) {
    tp::Context ctx = tp::Context::embedded();
    try {
        (void)tp::Supervisor::create(ctx, "[supervisor]\nconsumer_capacity = 0\n");
        FAIL() << "consumer_capacity = 0 accepted";
    } catch (const tp::Error& e) {
        EXPECT_EQ(e.code(), tp::Status::Config) << e.what();
    }
}

}  // namespace
