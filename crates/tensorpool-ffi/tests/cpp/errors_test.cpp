// Error paths: every failure is a tensorpool::Error whose code and message say what was wrong.
#include <tensorpool.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "support.hpp"

namespace tp = tensorpool;
using namespace std::chrono_literals;

namespace {

/// Runs `f`, expects an Error with `code` whose message contains `needle`.
template <class F>
void expect_error(F&& f, tp::Status code, const std::string& needle) {
    try {
        f();
        ADD_FAILURE() << "no error; expected " << tp::status_name(code) << " with \"" << needle << "\"";
    } catch (const tp::Error& e) {
        EXPECT_EQ(e.code(), code) << e.what();
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
            << "message \"" << e.what() << "\" lacks \"" << needle << "\"";
    }
}

}  // namespace

TEST(Errors, BadBaseDirs) {
    tp::Context ctx = tp::Context::embedded();
    expect_error([&] { tp::Producer p(ctx, tp::ProducerOptions(10000).standalone("relative/dir")); },
                 tp::Status::Config, "shm_base_dir");
    // An allowed base dir that does not exist yet is waited for (start order does not matter),
    // not an error: the consumer builds and stays unmapped.
    {
        tp::Consumer waiting(ctx, tp::ConsumerOptions(10000).allowed_base_dir("/nonexistent/tp-cpp-test"));
        EXPECT_EQ(waiting.state(), tp::ConsumerState::Unmapped);
    }
    // One that exists but is not a directory is refused, naming the path.
    tpt::TempDir shm;
    const std::string file = shm.sub("not-a-dir");
    std::ofstream(file) << "x";
    expect_error([&] { tp::Consumer c(ctx, tp::ConsumerOptions(10000).allowed_base_dir(file)); }, tp::Status::Shm,
                 "not-a-dir");
    expect_error([&] { tp::Producer p(ctx, tp::ProducerOptions(0)); }, tp::Status::Config, "stream_id");
}

TEST(Errors, BadUris) {
    tp::Context ctx = tp::Context::embedded();
    tpt::TempDir shm;
    expect_error([&] { tp::Producer p(ctx, tp::ProducerOptions(10000).standalone(shm.path()).channel("aeron:bogus")); },
                 tp::Status::Aeron, "Aeron");
    expect_error([&] { (void)tp::inspect("shm:file"); }, tp::Status::InvalidArgument, "region URI `shm:file`");
    expect_error([&] { (void)tp::inspect("http://example/ring"); }, tp::Status::InvalidArgument, "unknown scheme `http`");
    expect_error([&] { (void)tp::inspect(shm.sub("missing.ring")); }, tp::Status::Shm, "missing.ring");
}

TEST(Errors, DriverAbsentAttachTimesOut) {
    tp::Context ctx = tp::Context::embedded();
    tpt::TempDir shm;
    const auto start = std::chrono::steady_clock::now();
    expect_error(
        [&] {
            tp::Producer p(ctx, tp::ProducerOptions(10000).driver(tp::DriverEndpoints().attach_timeout(300ms), shm.path()));
        },
        tp::Status::Attach, "no lease within 300ms");
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s) << "the wait is bounded";
}

TEST(Errors, MediaDriverAbsentConnectTimesOut) {
    tpt::TempDir dir;
    expect_error([&] { (void)tp::Context::connect(dir.path(), 200ms); }, tp::Status::Aeron, "Aeron");
}

TEST(Errors, WrongLayoutVersion) {
    tp::Context ctx = tp::Context::embedded();
    tpt::TempDir shm;
    tp::Producer producer(ctx, tp::ProducerOptions(10000).standalone(shm.path()).header_nslots(8).pool(1, 4096)
                                   .prefault(false).announce_period(50ms));
    // A consumer expecting layout 2 never maps; the timeout error carries the reason.
    tp::Consumer consumer(ctx, tp::ConsumerOptions(10000).allowed_base_dir(shm.path()).expected_layout_version(2));
    expect_error(
        [&] {
            const auto end = std::chrono::steady_clock::now() + 1500ms;
            while (std::chrono::steady_clock::now() < end && consumer.mapping_error().empty()) {
                producer.do_work();
                (void)consumer.poll([](const tp::Frame&) {});
                std::this_thread::sleep_for(1ms);
            }
            consumer.wait_mapped(100ms);
        },
        tp::Status::Timeout, "layout_version 1 is not the expected 2");
    // The same reason, with its epoch and time, as the last rejection.
    const tp::Consumer::Rejection rejection = consumer.last_rejection();
    EXPECT_NE(rejection.reason.find("layout_version 1 is not the expected 2"), std::string::npos)
        << rejection.reason;
    EXPECT_GT(rejection.epoch, 0u);
    EXPECT_GT(rejection.at_unix_ns, 0u);
    // A region file whose superblock says layout 2 is rejected by inspect, naming the field.
    const std::string ring = producer.epoch_dir() + "/header.ring";
    const std::string copy = shm.sub("v2.ring");
    std::filesystem::copy_file(ring, copy);
    {
        std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(8);  // layout_version: u32 after the 8-byte magic
        const char v2[4] = {2, 0, 0, 0};
        f.write(v2, 4);
    }
    expect_error([&] { (void)tp::inspect(copy); }, tp::Status::RegionInvalid, "LayoutVersion is 2; expected 1");
    tp_region_info info{};
    EXPECT_EQ(tp_region_inspect(copy.c_str(), nullptr, &info), TP_ERR_REGION_INVALID);
    EXPECT_EQ(info.layout_version, 2u) << "the fields found are still reported";
    EXPECT_FALSE(info.valid);
}

TEST(Errors, CAbiNullsAndStaleHandles) {
    EXPECT_EQ(tp_context_new_embedded(nullptr, nullptr), TP_ERR_NULL);
    EXPECT_NE(std::string(tp_last_error()).find("out is NULL"), std::string::npos);
    tp_context* ctx = nullptr;
    ASSERT_EQ(tp_context_new_embedded(nullptr, &ctx), TP_OK);
    ASSERT_EQ(tp_context_free(ctx), TP_OK);
    bool b = false;
    EXPECT_EQ(tp_context_is_embedded(ctx, &b), TP_ERR_INVALID_HANDLE) << "a freed handle";
    EXPECT_EQ(tp_context_free(ctx), TP_ERR_INVALID_HANDLE) << "a double free";
    EXPECT_EQ(tp_consumer_poll(nullptr, nullptr, nullptr, 1, nullptr), TP_ERR_NULL);
}
