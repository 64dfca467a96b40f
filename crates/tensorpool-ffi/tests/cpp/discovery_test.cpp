// The discovery client through the C ABI and tensorpool::discover: a `tp discovery serve`
// provider indexes a C++ producer (its announce, data-source name and tag); queries by
// tag, name and stream id find it (or nothing), the results iterate through the C
// functions, and bad arguments are error codes.
#include <tensorpool.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <atomic>
#include <thread>

#include "support.hpp"

namespace tp = tensorpool;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kStream = 10000;

TEST(Discovery, FindsAProducerByTagNameAndStreamId) {
    ASSERT_TRUE(std::filesystem::exists(tpt::tp_binary())) << tpt::tp_binary();
    tpt::TempDir work{"tp-cpp-disco-"}, shm{"tp-cpp-disco-shm-"};
    const std::string aeron = work.sub("aeron");
    const std::string cfg = work.sub("discovery.toml");
    {
        std::ofstream f(cfg);
        f << "[discovery]\nrequest_channel = \"aeron:ipc\"\nannounce_channel = \"aeron:ipc\"\n"
             "metadata_channel = \"aeron:ipc\"\ndriver_instance_id = \"cpp-host\"\nannounce_period_ms = 200\n";
    }
    tp::Context ctx = tp::Context::embedded(aeron);
    tpt::Child provider({tpt::tp_binary(), "discovery", "serve", "--aeron-dir", aeron, "--config", cfg, "--idle",
                         "sleep:1ms"},
                        work.sub("provider.log"));
    tp::Producer producer(ctx, tp::ProducerOptions(kStream).standalone(shm.path()).header_nslots(8)
                                   .pool(1, 1024).announce_period(100ms).name("cam-cpp"));
    producer.set_meta({tp::MetaAttribute{"tag", "text/plain", "camera"}});

    tp::DiscoveryQuery q;
    q.request_channel = "aeron:ipc";
    q.tags = {"camera"};
    q.timeout = 2s;
    std::vector<tp::DiscoveredStream> found;
    const auto end = std::chrono::steady_clock::now() + 30s;
    while (true) {
        producer.do_work();
        auto r = tp::try_discover(ctx, q);
        if (r.ok() && r.value().size() == 1 && r.value()[0].data_source_name == "cam-cpp") {
            found = std::move(r.value());
            break;
        }
        ASSERT_FALSE(provider.done()) << provider.output();
        ASSERT_LT(std::chrono::steady_clock::now(), end) << "not indexed; provider: " << provider.output();
        std::this_thread::sleep_for(20ms);
    }
    const tp::DiscoveredStream& s = found[0];
    EXPECT_EQ(s.stream_id, kStream);
    EXPECT_EQ(s.driver_instance_id, "cpp-host");
    EXPECT_FALSE(s.driver_control_channel.empty());
    EXPECT_NE(s.driver_control_stream_id, 0u);
    EXPECT_EQ(s.header_nslots, 8u);
    ASSERT_EQ(s.tags.size(), 1u);
    EXPECT_EQ(s.tags[0], "camera");
    ASSERT_EQ(s.pools.size(), 1u);
    EXPECT_EQ(s.pools[0].pool_nslots, s.header_nslots);
    EXPECT_EQ(s.pools[0].stride_bytes, 1024u);
    EXPECT_FALSE(s.pools[0].region_uri.empty());

    producer.do_work();
    tp::DiscoveryQuery by_name = q;
    by_name.tags.clear();
    by_name.name = "cam-cpp";
    by_name.stream_id = kStream;
    EXPECT_EQ(tp::discover(ctx, by_name).size(), 1u);
    producer.do_work();
    by_name.name = "CAM-CPP";  // byte-exact, case-sensitive
    EXPECT_TRUE(tp::discover(ctx, by_name).empty());
    producer.do_work();
    tp::DiscoveryQuery other = q;
    other.stream_id = kStream + 1;
    EXPECT_TRUE(tp::discover(ctx, other).empty());

    // the C functions directly: count, get, tag, pool, out of range, close
    producer.do_work();
    tp_discovery_request r{};
    ASSERT_EQ(tp_discovery_request_init(&r), TP_OK);
    r.request_channel = "aeron:ipc";
    r.timeout_ms = 2000;
    tp_discovery_results* h = nullptr;
    ASSERT_EQ(tp_discovery_query(ctx.get(), &r, &h), TP_OK) << tp_last_error();
    std::size_t n = 0;
    ASSERT_EQ(tp_discovery_results_count(h, &n), TP_OK);
    ASSERT_EQ(n, 1u);
    tp_discovery_stream cs{};
    ASSERT_EQ(tp_discovery_results_get(h, 0, &cs), TP_OK);
    EXPECT_EQ(cs.stream_id, kStream);
    EXPECT_STREQ(cs.data_source_name, "cam-cpp");
    const char* tag = nullptr;
    ASSERT_EQ(tp_discovery_results_tag(h, 0, 0, &tag), TP_OK);
    EXPECT_STREQ(tag, "camera");
    EXPECT_EQ(tp_discovery_results_get(h, 1, &cs), TP_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(tp_discovery_results_tag(h, 0, 1, &tag), TP_ERR_INVALID_ARGUMENT);
    tp_discovery_pool pool{};
    EXPECT_EQ(tp_discovery_results_pool(h, 0, 1, &pool), TP_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(tp_discovery_results_close(h), TP_OK);
    EXPECT_EQ(tp_discovery_results_count(h, &n), TP_ERR_INVALID_HANDLE);
}

TEST(Discovery, BadArgumentsAreErrorCodes) {
    tp::Context ctx = tp::Context::embedded();
    tp_discovery_results* h = nullptr;
    EXPECT_EQ(tp_discovery_query(ctx.get(), nullptr, &h), TP_ERR_NULL);
    tp_discovery_request r{};
    ASSERT_EQ(tp_discovery_request_init(&r), TP_OK);
    r.response_stream_id = -1;
    EXPECT_EQ(tp_discovery_query(ctx.get(), &r, &h), TP_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(h, nullptr);
    r.response_stream_id = 0;
    r.tag_count = 1;  // tags NULL with a count
    EXPECT_EQ(tp_discovery_query(ctx.get(), &r, &h), TP_ERR_NULL);
    EXPECT_EQ(tp_discovery_results_close(nullptr), TP_OK);
    tp::DiscoveryQuery q;
    q.response_stream_id = -5;
    auto res = tp::try_discover(ctx, q);
    ASSERT_FALSE(res.ok());
    EXPECT_EQ(res.code(), tp::Status::InvalidArgument);
}

// The provider in-process (tp_discovery_provider_* / tensorpool::DiscoveryProvider): run on
// its own thread, it indexes a producer and answers a query; its counters say so; a bad
// configuration is a Config error.
TEST(Discovery, AProviderInProcessIndexesAndAnswers) {
    tpt::TempDir work{"tp-cpp-dprov-"}, shm{"tp-cpp-dprov-shm-"};
    tp::Context ctx = tp::Context::embedded(work.sub("aeron"));
    auto bad = tp::DiscoveryProvider::try_create(ctx, "[discovery]\nmax_results = \"many\"\n");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.code(), tp::Status::Config);
    tp::DiscoveryProvider provider = tp::DiscoveryProvider::create(
        ctx, "[discovery]\nrequest_channel = \"aeron:ipc\"\nannounce_channel = \"aeron:ipc\"\n"
             "metadata_channel = \"aeron:ipc\"\ndriver_instance_id = \"cpp-inproc\"\n");
    std::atomic<bool> stop{false};
    std::thread runner([&] {
        while (!stop.load()) {
            if (provider.do_work() == 0) std::this_thread::sleep_for(1ms);
        }
    });
    tp::Producer producer(ctx, tp::ProducerOptions(kStream).standalone(shm.path()).header_nslots(8)
                                   .pool(1, 1024).announce_period(100ms).name("cam-inproc"));
    tp::DiscoveryQuery q;
    q.request_channel = "aeron:ipc";
    q.name = "cam-inproc";
    q.timeout = 1s;
    bool found = false;
    const auto end = std::chrono::steady_clock::now() + 30s;
    while (!found && std::chrono::steady_clock::now() < end) {
        producer.do_work();
        auto r = tp::try_discover(ctx, q);
        found = r.ok() && r.value().size() == 1 && r.value()[0].driver_instance_id == "cpp-inproc";
        if (!found) std::this_thread::sleep_for(20ms);
    }
    stop.store(true);
    runner.join();
    ASSERT_TRUE(found) << "the in-process provider never answered with the producer";
    const tp::DiscoveryProvider::Counters c = provider.counters();
    EXPECT_GE(c.entries, 1u);
    EXPECT_GE(c.announces, 1u);
    EXPECT_GE(c.requests, 1u);
    EXPECT_GE(c.responses_sent, 1u);
}

}  // namespace
