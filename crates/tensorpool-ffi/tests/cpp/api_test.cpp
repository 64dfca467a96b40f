// API behaviour of tensorpool.hpp: zero-copy round trips, claim RAII, Result, callbacks,
// frame views, the in-process SHM driver and region inspection.
#include <tensorpool.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <numeric>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "support.hpp"

namespace tp = tensorpool;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kStream = 10000;

/// One test's world: an embedded media driver and a private SHM base dir.
struct World {
    tpt::TempDir shm{"tp-cpp-api-"};
    tp::Context ctx = tp::Context::embedded();

    tp::ProducerOptions producer_options() const {
        return tp::ProducerOptions(kStream).standalone(shm.path()).header_nslots(16).pool(1, 64 * 1024).prefault(false)
            .announce_period(50ms);
    }
    tp::ConsumerOptions consumer_options() const { return tp::ConsumerOptions(kStream).allowed_base_dir(shm.path()); }
};

/// Produces with `fill` and polls until `want` frames reached the handler (bounded).
template <class Fill, class Handle>
void pump(tp::Producer& p, tp::Consumer& c, const tp::TensorSpec& spec, std::size_t want, Fill fill, Handle handle) {
    std::size_t got = 0;
    const auto end = std::chrono::steady_clock::now() + 20s;
    while (got < want) {
        ASSERT_LT(std::chrono::steady_clock::now(), end) << "only " << got << " of " << want << " frames";
        tp::Claim claim = p.claim(spec);
        fill(claim);
        claim.commit();
        p.do_work();
        c.poll([&](const tp::Frame& f) {
            handle(f);
            ++got;
        });
        std::this_thread::sleep_for(100us);
    }
}

}  // namespace

TEST(Basics, VersionDtypesAndStatusNames) {
    EXPECT_EQ(tp::version(), "0.1.0");
    EXPECT_EQ(tp::layout_version(), 1u);
    EXPECT_EQ(tp::dtype_size(tp::Dtype::Float64), 8u);
    EXPECT_EQ(tp::dtype_name(tp::Dtype::Uint16), "u16");
    static_assert(tp::dtype_of<float>() == tp::Dtype::Float32);
    static_assert(tp::dtype_of<std::int16_t>() == tp::Dtype::Int16);
    EXPECT_EQ(tp::status_name(tp::Status::Timeout), "TP_ERR_TIMEOUT");
    EXPECT_GT(tp::monotonic_ns(), 0u);
    static_assert(!std::is_copy_constructible_v<tp::Producer> && std::is_move_constructible_v<tp::Producer>);
    static_assert(!std::is_copy_constructible_v<tp::Claim> && std::is_move_constructible_v<tp::Claim>);
}

TEST(Spec, ShapesStridesAndInvalidSpecs) {
    tp::TensorSpec s(tp::Dtype::Float32, {4, 5});
    EXPECT_EQ(s.len_bytes(), 80u);
    const std::vector<std::size_t> shape{4, 5}, strides{0, 0};
    EXPECT_EQ(tp::TensorSpec::strided(tp::Dtype::Uint8, tp::MajorOrder::Column, shape, strides).len_bytes(), 20u);
    try {
        tp::TensorSpec bad(tp::Dtype::Uint8, {1, 2, 3, 4, 5, 6, 7, 8, 9});
        FAIL() << "nine dimensions accepted";
    } catch (const tp::Error& e) {
        EXPECT_EQ(e.code(), tp::Status::InvalidArgument);
        EXPECT_NE(std::string(e.what()).find("1 to 8 dimensions"), std::string::npos) << e.what();
    }
}

TEST(RoundTrip, ZeroCopyFramesWithShapeStridesAndPayload) {
    World w;
    tp::Producer producer(w.ctx, w.producer_options());
    tp::Consumer consumer(w.ctx, w.consumer_options());
    const tp::TensorSpec spec(tp::Dtype::Uint16, {24, 32});
    std::vector<std::byte> copy(spec.len_bytes());
    std::uint64_t checked = 0;
    pump(
        producer, consumer, spec, 5,
        [](tp::Claim& c) {
            auto px = c.as<std::uint16_t>();
            ASSERT_EQ(px.size(), 24u * 32u);
            for (std::size_t j = 0; j < px.size(); ++j) px[j] = static_cast<std::uint16_t>(c.seq() + j);
        },
        [&](const tp::Frame& f) {
            EXPECT_EQ(f.stream_id(), kStream);
            EXPECT_EQ(f.dtype(), tp::Dtype::Uint16);
            EXPECT_EQ(f.major_order(), tp::MajorOrder::Row);
            ASSERT_EQ(f.shape().size(), 2u);
            EXPECT_EQ(f.shape()[0], 24u);
            EXPECT_EQ(f.shape()[1], 32u);
            EXPECT_EQ(f.strides()[0], 64u);
            EXPECT_EQ(f.strides()[1], 2u);
            EXPECT_EQ(f.epoch(), producer.epoch());
            auto v = f.values<std::uint16_t>();
            bool ok = v[0] == static_cast<std::uint16_t>(f.seq()) && v[767] == static_cast<std::uint16_t>(f.seq() + 767);
            ASSERT_TRUE(f.recheck());
            EXPECT_TRUE(ok);
            EXPECT_EQ(f.copy_to(copy), spec.len_bytes());
            EXPECT_THROW((void)f.values<std::uint32_t>(), tp::Error);
            ++checked;
        });
    EXPECT_EQ(checked, 5u);
    EXPECT_GE(consumer.counters().accepted, 4u);
    EXPECT_EQ(consumer.state(), tp::ConsumerState::Mapped);
    EXPECT_EQ(consumer.status().epoch, producer.epoch());
    EXPECT_EQ(consumer.counter("drops.late"), 0u);
    EXPECT_GE(producer.counter("committed"), 5u);
}

TEST(Claim, DestroyingAnUncommittedClaimAbortsItAndMovesKeepOneOwner) {
    World w;
    tp::Producer producer(w.ctx, w.producer_options());
    const tp::TensorSpec spec(tp::Dtype::Uint8, {128});
    {
        tp::Claim c = producer.claim(spec);
        EXPECT_EQ(c.seq(), 0u);
        EXPECT_EQ(c.bytes().size(), 128u);
        tp::Claim moved = std::move(c);
        EXPECT_FALSE(c.is_open());
        EXPECT_TRUE(moved.is_open());
        EXPECT_THROW((void)producer.claim(spec), tp::Error) << "one claim at a time";
    }
    EXPECT_EQ(producer.counters().aborted, 1u);
    tp::Claim c = producer.claim(spec);
    EXPECT_EQ(c.seq(), 0u) << "an aborted claim's sequence is reused";
    EXPECT_EQ(c.commit(), 0u);
    EXPECT_FALSE(c.is_open());
    tp::Result<std::uint64_t> again = c.try_commit();
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.code(), tp::Status::State);
    EXPECT_EQ(producer.next_seq(), 1u);
}

TEST(Result, HotPathAlternativesCarryCodeAndMessage) {
    World w;
    tp::Producer producer(w.ctx, w.producer_options());
    const tp::TensorSpec too_big(tp::Dtype::Uint8, {128 * 1024});
    tp::Result<tp::Claim> r = producer.try_claim(too_big);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.code(), tp::Status::NoPoolFits);
    EXPECT_NE(std::string(r.error().what()).find("no payload pool holds 131072 bytes"), std::string::npos)
        << r.error().what();
    EXPECT_THROW((void)r.value(), tp::Error);
    tp::Result<tp::Claim> ok = producer.try_claim(tp::TensorSpec(tp::Dtype::Uint8, {64}));
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(ok->seq(), 0u);
    EXPECT_TRUE(ok.value().try_commit().ok());
    EXPECT_EQ(producer.offer(tp::TensorSpec(tp::Dtype::Uint8, {4}), std::vector<std::byte>(4)), 1u);
}

TEST(Poll, ExceptionsFromTheHandlerPropagateAfterThePoll) {
    World w;
    tp::Producer producer(w.ctx, w.producer_options());
    tp::Consumer consumer(w.ctx, w.consumer_options());
    const tp::TensorSpec spec(tp::Dtype::Uint8, {64});
    const auto mapped_by = std::chrono::steady_clock::now() + 10s;
    while (consumer.state() != tp::ConsumerState::Mapped) {
        ASSERT_LT(std::chrono::steady_clock::now(), mapped_by) << consumer.mapping_error();
        producer.do_work();
        (void)consumer.poll([](const tp::Frame&) {});
        std::this_thread::sleep_for(1ms);
    }
    bool thrown = false;
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (!thrown && std::chrono::steady_clock::now() < end) {
        producer.claim(spec).commit();
        producer.do_work();
        try {
            consumer.poll([](const tp::Frame&) { throw std::runtime_error("from the handler"); });
        } catch (const std::runtime_error& e) {
            EXPECT_STREQ(e.what(), "from the handler");
            thrown = true;
        }
    }
    EXPECT_TRUE(thrown);
    std::size_t more = 0;
    pump(producer, consumer, spec, 2, [](tp::Claim&) {}, [&](const tp::Frame&) { ++more; });
    EXPECT_EQ(more, 2u) << "the consumer keeps working";
}

TEST(Frame, AViewUsedOutsideItsHandlerIsAnErrorNotACrash) {
    World w;
    tp::Producer producer(w.ctx, w.producer_options());
    tp::Consumer consumer(w.ctx, w.consumer_options());
    const tp::TensorSpec spec(tp::Dtype::Uint8, {64});
    tp_frame_view kept{};
    pump(producer, consumer, spec, 1, [](tp::Claim&) {}, [&](const tp::Frame& f) { kept = f.raw(); });
    EXPECT_EQ(tp_frame_recheck(&kept), TP_ERR_INVALID_HANDLE);
    EXPECT_NE(std::string(tp_last_error()).find("outside its handler"), std::string::npos);
    EXPECT_FALSE(tp::Frame(kept).recheck());
}

TEST(Driver, InProcessShmDriverLeasesToProducerAndConsumer) {
    tpt::TempDir shm{"tp-cpp-driver-"};
    tp::Context ctx = tp::Context::embedded();
    const std::string toml = "[driver]\ncontrol_channel = \"aeron:ipc?term-length=1m\"\n"
                             "[shm]\nbase_dir = \"" + shm.path() + "\"\n"
                             "[policies]\nannounce_period_ms = 50\n"
                             "shutdown_timeout_ms = 300\nprefault_shm = false\n"
                             "[profiles.p]\nheader_nslots = 16\npayload_pools = [{ pool_id = 1, stride_bytes = 4096 }]\n"
                             "[streams.s]\nstream_id = 10000\nprofile = \"p\"\n";
    tp::Driver driver = tp::Driver::start(ctx, toml);
    EXPECT_TRUE(driver.running());
    EXPECT_EQ(driver.base_dir(), shm.path());
    {
        tp::Producer producer(ctx, tp::ProducerOptions(kStream).driver(driver.endpoints(), shm.path()));
        tp::Consumer consumer(ctx, tp::ConsumerOptions(kStream).allowed_base_dir(shm.path()).driver(driver.endpoints()));
        const tp::TensorSpec spec(tp::Dtype::Int32, {16});
        std::size_t seen = 0;
        pump(
            producer, consumer, spec, 3, [](tp::Claim& c) { std::ranges::fill(c.as<std::int32_t>(), -7); },
            [&](const tp::Frame& f) {
                EXPECT_EQ(f.values<std::int32_t>()[15], -7);
                ++seen;
            });
        EXPECT_EQ(seen, 3u);
        EXPECT_THROW((void)producer.epoch_dir(), tp::Error) << "the driver owns the files";
    }
    driver.stop(3s);
    EXPECT_FALSE(driver.running());
    driver.stop();  // idempotent
}

TEST(Inspect, SummarisesAHeaderRingAndAPool) {
    World w;
    tp::Producer producer(w.ctx, w.producer_options());
    const tp::TensorSpec spec(tp::Dtype::Uint8, {64});
    for (int i = 0; i < 3; ++i) producer.claim(spec).commit();
    const std::string dir = producer.epoch_dir();
    tp::RegionInfo ring = tp::inspect(dir + "/header.ring");
    EXPECT_TRUE(ring.valid);
    EXPECT_EQ(ring.region_type, TP_REGION_HEADER_RING);
    EXPECT_EQ(ring.nslots, 16u);
    EXPECT_EQ(ring.committed_slots, 3u);
    EXPECT_TRUE(ring.has_latest_seq);
    EXPECT_EQ(ring.latest_seq, 2u);
    EXPECT_EQ(ring.epoch, producer.epoch());
    tp::RegionInfo pool = tp::inspect("shm:file?path=" + dir + "/1.pool", w.shm.path());
    EXPECT_EQ(pool.region_type, TP_REGION_PAYLOAD_POOL);
    EXPECT_EQ(pool.stride_bytes, 64u * 1024u);
}

TEST(Idle, StrategiesFromTextAndBadText) {
    tp::IdleStrategy idle("backoff:10,10,1us,200us");
    for (std::size_t i = 0; i < 30; ++i) idle.idle(0);
    idle.idle(1);
    try {
        tp::IdleStrategy bad("nap");
        FAIL();
    } catch (const tp::Error& e) {
        EXPECT_EQ(e.code(), tp::Status::InvalidArgument);
    }
}

// --- issue 18: types and lifetimes, progress, metadata, counters, logging, admin, try_ -----

TEST(Types, TypedAccessIsCheckedAgainstTheDtype) {
    static_assert(!std::is_copy_constructible_v<tp::Frame> && !std::is_move_constructible_v<tp::Frame>,
                  "a Frame is a handler-scoped view");
    static_assert(tp::dtype_accepts<std::uint16_t>(tp::Dtype::Uint16));
    static_assert(!tp::dtype_accepts<std::int16_t>(tp::Dtype::Uint16));
    static_assert(!tp::dtype_accepts<double>(tp::Dtype::Uint16));
    static_assert(tp::dtype_accepts<std::byte>(tp::Dtype::Uint8));
    EXPECT_EQ(tp::TensorSpec::of<float>({4, 5}).dtype(), tp::Dtype::Float32);
    EXPECT_EQ(tp::TensorSpec::of<std::int16_t>({3}).len_bytes(), 6u);
    World w;
    tp::Producer producer(w.ctx, w.producer_options());
    const tp::TensorSpec spec(tp::Dtype::Uint16, {8, 4});
    tp::Claim claim = producer.claim(spec);
    EXPECT_EQ(claim.dtype(), tp::Dtype::Uint16);
    EXPECT_EQ(claim.as<std::uint16_t>().size(), 32u);
    EXPECT_THROW((void)claim.as<std::int16_t>(), tp::Error);
    EXPECT_THROW((void)claim.as<double>(), tp::Error);
    EXPECT_EQ(claim.try_as<double>().code(), tp::Status::InvalidArgument);
    claim.abort();
}

TEST(Types, IdsShapesAndPathsAreValidatedAtEveryEntryPoint) {
    const std::size_t zero[] = {480, 0};
    auto spec = tp::TensorSpec::try_create(tp::Dtype::Uint16, zero);
    ASSERT_FALSE(spec.ok());
    EXPECT_EQ(spec.code(), tp::Status::InvalidArgument);
    EXPECT_NE(spec.error().what(), std::string());
    EXPECT_THROW(tp::TensorSpec(tp::Dtype::Uint16, {480, 0}), tp::Error);
    const auto cwd_entry = std::filesystem::current_path() / "tp-relative-aeron";
    auto rel = tp::Context::try_embedded("tp-relative-aeron/dir");
    EXPECT_EQ(rel.code(), tp::Status::InvalidArgument);
    EXPECT_FALSE(std::filesystem::exists(cwd_entry)) << "no relative directory created";
    World w;
    EXPECT_EQ(tp::Producer::try_create(w.ctx, tp::ProducerOptions(0).standalone(w.shm.path())).code(),
              tp::Status::Config);
    EXPECT_EQ(tp::Producer::try_create(w.ctx, tp::ProducerOptions(kStream).standalone("relative/shm")).code(),
              tp::Status::Config);
    EXPECT_EQ(tp::Consumer::try_create(w.ctx, tp::ConsumerOptions(0)).code(), tp::Status::Config);
}

TEST(Lifetimes, AClaimCannotOutliveItsProducer) {
    World w;
    const tp::TensorSpec spec(tp::Dtype::Uint8, {64});
    std::optional<tp::Producer> producer(std::in_place, w.ctx, w.producer_options());
    tp::Claim claim = producer->claim(spec);
    // Moving the producer keeps the claim usable.
    tp::Producer moved = std::move(*producer);
    producer.reset();
    ASSERT_TRUE(claim.is_open());
    EXPECT_EQ(claim.commit(), 0u);
    tp::Claim orphan = moved.claim(spec);
    tp::Claim moved_claim = std::move(orphan);
    {
        tp::Producer gone = std::move(moved);
    }
    EXPECT_FALSE(moved_claim.is_open());
    EXPECT_TRUE(moved_claim.bytes().empty());
    EXPECT_THROW((void)moved_claim.as<std::uint8_t>(), tp::Error);
    EXPECT_EQ(moved_claim.try_commit().code(), tp::Status::State);
}

TEST(Frames, StridedViewsTraceIdsTimestampsAndCountersAll) {
    World w;
    tp::Producer producer(w.ctx, w.producer_options());
    tp::Consumer consumer(w.ctx, w.consumer_options());
    const auto spec = tp::TensorSpec::of<std::uint16_t>({6, 5});
    std::size_t seen = 0;
    pump(
        producer, consumer, spec, 3,
        [](tp::Claim& c) {
            auto px = c.as<std::uint16_t>();
            for (std::size_t j = 0; j < px.size(); ++j) px[j] = static_cast<std::uint16_t>(j);
            c.set_timestamp_ns(1000 + c.seq());
            c.set_trace_id(77);
        },
        [&](const tp::Frame& f) {
            EXPECT_THROW((void)f.values<std::int16_t>(), tp::Error);
            EXPECT_EQ(f.try_values<double>().code(), tp::Status::InvalidArgument);
            auto v = f.ndview<std::uint16_t>();
            EXPECT_EQ(v.rank(), 2u);
            EXPECT_EQ(v.stride(0), 5u);
            EXPECT_EQ(v(3, 4), 19u);
            EXPECT_EQ(f.timestamp_ns(), 1000 + f.seq());
            EXPECT_EQ(f.trace_id(), 77u);
            EXPECT_TRUE(f.recheck());
            ++seen;
        });
    EXPECT_EQ(seen, 3u);
    const tp::ProducerCountersAll pc = producer.counters_all();
    EXPECT_EQ(pc.committed, producer.counter("committed"));
    EXPECT_EQ(pc.descriptors_sent, producer.counter("descriptors_sent"));
    const tp::ConsumerCountersAll cc = consumer.counters_all();
    EXPECT_EQ(cc.accepted, consumer.counter("accepted"));
    EXPECT_EQ(cc.drops[TP_DROP_UNMAPPED], consumer.counter("drops.unmapped"));
    EXPECT_EQ(tp::drop_cause_name(TP_DROP_LATE), "late");
    EXPECT_EQ(consumer.info().effective_mode, static_cast<std::uint32_t>(tp::Mode::Stream));
    EXPECT_EQ(producer.info().consumer_count, producer.counters().consumers);
}

TEST(Progress, ReportsReachTheProgressHandlerAndMetadataTheConsumer) {
    World w;
    tp::Producer producer(w.ctx, w.producer_options().name("cam").summary("a camera"));
    tp::Consumer consumer(w.ctx, w.consumer_options().progress(tp::ProgressHints{0, 1, 0}));
    const std::uint32_t version = producer.set_meta({{"gain", "text/plain", "2"}});
    std::vector<std::byte> blob(2000, std::byte{0x5A});
    producer.publish_meta_blob(3, blob);
    std::vector<std::uint64_t> progress_seqs;
    bool rechecked = false;
    auto on_frame = [](const tp::Frame&) {};
    auto on_progress = [&](const tp::Progress& p) {
        progress_seqs.push_back(p.seq());
        rechecked |= p.recheck();
    };
    const auto end = std::chrono::steady_clock::now() + 20s;
    while (!(producer.info().progress_active && consumer.meta() && consumer.meta_blob() &&
             consumer.state() == tp::ConsumerState::Mapped)) {
        ASSERT_LT(std::chrono::steady_clock::now(), end) << "progress, metadata and blob";
        producer.do_work();
        consumer.poll_progress(on_frame, on_progress);
        std::this_thread::sleep_for(1ms);
    }
    const auto meta = consumer.meta();
    EXPECT_EQ(meta->version, version);
    ASSERT_EQ(meta->attributes.size(), 1u);
    EXPECT_EQ(meta->attributes[0].key, "gain");
    EXPECT_EQ(meta->attributes[0].value, "2");
    EXPECT_EQ(consumer.meta_blob()->blob_type, 3u);
    EXPECT_EQ(consumer.meta_blob()->data, blob);
    EXPECT_EQ(consumer.source_name(), "cam");
    tp::Claim claim = producer.claim(tp::TensorSpec::of<std::uint8_t>({256}));
    std::ranges::fill(claim.as<std::uint8_t>(), std::uint8_t{1});
    (void)claim.progress(128);
    const std::uint64_t seq = claim.commit();
    while (progress_seqs.empty()) {
        ASSERT_LT(std::chrono::steady_clock::now(), end) << "progress reports";
        producer.do_work();
        consumer.poll_progress(on_frame, on_progress);
        std::this_thread::sleep_for(1ms);
    }
    EXPECT_EQ(progress_seqs.front(), seq);
    EXPECT_TRUE(rechecked);
}

TEST(Logging, LibraryLogsReachTheApplicationsLogger) {
    std::vector<std::pair<tp::LogLevel, std::string>> got;
    std::mutex m;
    tp::set_logger(
        [&](tp::LogLevel l, std::string_view target, std::string_view message) {
            std::lock_guard<std::mutex> lock(m);
            if (target == "tensorpool_ffi") got.emplace_back(l, std::string(message));
        },
        tp::LogLevel::Info);
    tp::log(tp::LogLevel::Warn, "from the test");
    tp::log(tp::LogLevel::Debug, "filtered out");
    tp::clear_logger();
    tp::log(tp::LogLevel::Error, "after clearing");
    std::lock_guard<std::mutex> lock(m);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].first, tp::LogLevel::Warn);
    EXPECT_EQ(got[0].second, "from the test");
}

TEST(Admin, DriverQueriesAnswerJson) {
    tpt::TempDir shm{"tp-cpp-admin-"};
    tp::Context ctx = tp::Context::embedded();
    const std::string toml = "[driver]\ncontrol_channel = \"aeron:ipc?term-length=1m\"\n"
                             "[shm]\nbase_dir = \"" + shm.path() + "\"\n"
                             "[policies]\nshutdown_timeout_ms = 300\nprefault_shm = false\n"
                             "[profiles.p]\nheader_nslots = 16\npayload_pools = [{ pool_id = 1, stride_bytes = 4096 }]\n"
                             "[streams.s]\nstream_id = 10000\nprofile = \"p\"\n";
    tp::Driver driver = tp::Driver::start(ctx, toml);
    const std::string status = tp::driver_query(ctx, driver.endpoints(), tp::AdminQuery::Status, 10s);
    EXPECT_NE(status.find(shm.path()), std::string::npos) << status;
    const std::string streams = tp::driver_query(ctx, driver.endpoints(), tp::AdminQuery::Streams, 10s);
    EXPECT_FALSE(streams.empty());
    auto none = tp::try_driver_query(ctx, tp::DriverEndpoints().control("aeron:ipc?term-length=1m", 4242),
                                     tp::AdminQuery::Status, 200ms);
    EXPECT_EQ(none.code(), tp::Status::Timeout);
    driver.stop();
}

TEST(TryForms, EveryFallibleCallHasANonThrowingTwin) {
    tpt::TempDir shm{"tp-cpp-try-"};
    auto ctx = tp::Context::try_embedded();
    ASSERT_TRUE(ctx.ok()) << ctx.error().what();
    EXPECT_TRUE(ctx->try_is_embedded().value());
    EXPECT_FALSE(ctx->try_aeron_dir().value().empty());
    EXPECT_EQ(tp::Context::try_connect(shm.sub("no-aeron"), 100ms).code(), tp::Status::Aeron);
    auto expect_error = [](const auto& r, const char* what) {
        EXPECT_FALSE(r.ok()) << what;
        if (!r.ok()) {
            EXPECT_NE(std::string(r.error().what()), "") << what;
        }
    };
    EXPECT_NO_THROW({
        expect_error(tp::Driver::try_start(*ctx, "[driver\n"), "driver");
        expect_error(tp::Driver::try_start_file(*ctx, shm.sub("absent.toml")), "driver file");
        expect_error(tp::Supervisor::try_create(*ctx, "[supervisor]\nno_such_key = 1\n[x\n"), "supervisor");
        expect_error(tp::RateLimiter::try_create_file(*ctx, shm.sub("absent.toml")), "rate limiter");
        expect_error(tp::Bridge::try_create(*ctx, "[bridge\n"), "bridge");
        expect_error(tp::try_inspect(shm.sub("absent")), "inspect");
        expect_error(tp::IdleStrategy::try_create("no-such-strategy"), "idle");
        expect_error(tp::TensorSpec::try_of<float>(std::span<const std::size_t>()), "spec");
    });
    tp::Producer producer(*ctx, tp::ProducerOptions(kStream).standalone(shm.path()).header_nslots(8).pool(1, 4096)
                                    .prefault(false));
    EXPECT_TRUE(producer.try_do_work().ok());
    EXPECT_EQ(producer.try_epoch().value(), producer.epoch());
    EXPECT_EQ(producer.try_counter("no_such_counter").code(), tp::Status::InvalidArgument);
    tp::Claim claim = producer.claim(tp::TensorSpec::of<std::uint8_t>({16}));
    EXPECT_EQ(producer.try_do_work().code(), tp::Status::State) << "a claim is open";
    EXPECT_EQ(producer.try_offer(tp::TensorSpec::of<std::uint8_t>({16}), {}).code(), tp::Status::State);
    claim.abort();
    EXPECT_TRUE(producer.try_close().ok());
}

TEST(Parity, ClaimLenProgressUnitsAndConsumerQueries) {
    World w;
    tp::Producer producer(w.ctx, w.producer_options());
    tp::Consumer consumer(w.ctx, w.consumer_options());
    auto spec = tp::TensorSpec::of<std::uint8_t>({4, 16});
    spec.progress_rows();
    EXPECT_EQ(spec.try_progress_unit(9).code(), tp::Status::InvalidArgument);
    tp::Claim claim = producer.claim_len(spec, 128);
    EXPECT_EQ(claim.bytes().size(), 128u);
    claim.commit();
    EXPECT_EQ(producer.try_claim_len(spec, 8).code(), tp::Status::InvalidArgument);
    EXPECT_FALSE(consumer.descriptor_assignment().has_value());
    EXPECT_EQ(consumer.last_blob_discard(), static_cast<std::uint32_t>(TP_BLOB_DISCARD_NONE));
}
