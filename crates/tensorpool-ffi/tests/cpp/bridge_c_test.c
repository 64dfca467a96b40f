/* The bridge through the C API only (compiled as C11 against tensorpool.h): an in-process
 * SHM driver, a producer on the source stream, one bridge instance running both halves over
 * loopback UDP and a consumer of the destination stream. The destination frames carry the
 * source's sequences and bytes; the counters say what crossed; a bad configuration, a bad
 * side, NULL arguments and a stale handle are error codes with a message. Exit status 0 when
 * every check passed. */
#define _XOPEN_SOURCE 700

#include <tensorpool.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: CHECK(%s) failed (last error: %s)\n", __FILE__, __LINE__, \
                    #cond, tp_last_error());                                                 \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

/* A call that must succeed; the test cannot go on without it. */
#define MUST(call)                                                                           \
    do {                                                                                     \
        enum tp_status s_ = (call);                                                          \
        if (s_ != TP_OK) {                                                                   \
            fprintf(stderr, "%s:%d: %s = %s: %s\n", __FILE__, __LINE__, #call,               \
                    tp_status_name((int)s_), tp_last_error());                               \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

#define SOURCE 10000u
#define DEST 11000u
#define FRAMES 10u

struct seen {
    uint64_t seqs[FRAMES];
    size_t n;
    int bytes_ok;
};

static void on_frame(const struct tp_frame_view* f, void* user) {
    struct seen* s = (struct seen*)user;
    int ok = f->len == 8 * sizeof(uint64_t);
    for (size_t i = 0; ok && i < 8; i++) {
        uint64_t v;
        memcpy(&v, f->data + i * sizeof v, sizeof v);
        ok = v == f->seq;
    }
    /* the bytes count only if the frame was still committed after they were read */
    if (tp_frame_recheck(f) != TP_OK) return;
    if (!ok) s->bytes_ok = 0;
    if (s->n < FRAMES) s->seqs[s->n++] = f->seq;
}

static int rm_entry(const char* path, const struct stat* sb, int flag, struct FTW* ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void sleep_1ms(void) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

static int contains(const char* text, const char* part) { return strstr(text, part) != NULL; }

int main(void) {
    char shm[] = "/dev/shm/tp-c-bridge-XXXXXX";
    if (mkdtemp(shm) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    const int port = 25000 + (int)(getpid() % 4000) * 2;
    char driver_toml[1024];
    snprintf(driver_toml, sizeof driver_toml,
             "[driver]\ncontrol_channel = \"aeron:ipc?term-length=1m\"\n"
             "[shm]\nbase_dir = \"%s\"\n"
             "[policies]\nannounce_period_ms = 50\nshutdown_timeout_ms = 300\nprefault_shm = false\n"
             "[profiles.p]\nheader_nslots = 64\npayload_pools = [{ pool_id = 1, stride_bytes = 4096 }]\n"
             "[streams.src]\nstream_id = %u\nprofile = \"p\"\n"
             "[streams.dst]\nstream_id = %u\nprofile = \"p\"\n",
             shm, SOURCE, DEST);
    char bridge_toml[1024];
    snprintf(bridge_toml, sizeof bridge_toml,
             "[bridge]\ninstance_id = \"c\"\n"
             "payload_channel = \"aeron:udp?endpoint=127.0.0.1:%d\"\npayload_stream_id = 3000\n"
             "control_channel = \"aeron:udp?endpoint=127.0.0.1:%d\"\ncontrol_stream_id = 3001\n"
             "[[mappings]]\nsource_stream_id = %u\ndest_stream_id = %u\nprofile = \"p\"\n",
             port, port + 1, SOURCE, DEST);

    struct tp_context* ctx = NULL;
    MUST(tp_context_new_embedded(NULL, &ctx));
    struct tp_driver* driver = NULL;
    MUST(tp_driver_start(ctx, driver_toml, NULL, &driver));
    struct tp_driver_endpoints endpoints;
    MUST(tp_driver_endpoints_of(driver, &endpoints));

    /* errors first: each is a code and a message, never a crash */
    struct tp_bridge* bad = NULL;
    CHECK(tp_bridge_create(ctx, "[bridge]\ninstance_id = \"x\"\n", NULL, NULL, &bad) == TP_ERR_CONFIG);
    CHECK(contains(tp_last_error(), "bridge.payload_channel"));
    CHECK(bad == NULL);
    CHECK(tp_bridge_create(ctx, NULL, NULL, NULL, &bad) == TP_ERR_CONFIG);
    CHECK(contains(tp_last_error(), "config_toml or config_path"));
    CHECK(tp_bridge_create(ctx, NULL, "/nonexistent/tp-bridge.toml", NULL, &bad) == TP_ERR_CONFIG);
    struct tp_bridge_options opts;
    MUST(tp_bridge_options_init(&opts));
    CHECK(opts.side == TP_BRIDGE_BOTH);
    opts.side = 7;
    CHECK(tp_bridge_create(ctx, bridge_toml, NULL, &opts, &bad) == TP_ERR_INVALID_ARGUMENT);
    CHECK(contains(tp_last_error(), "side 7"));
    CHECK(tp_bridge_create(NULL, bridge_toml, NULL, NULL, &bad) == TP_ERR_NULL);
    CHECK(tp_bridge_create(ctx, bridge_toml, NULL, NULL, NULL) == TP_ERR_NULL);

    opts.side = TP_BRIDGE_BOTH;
    opts.shm_base_dir = shm;
    opts.driver = endpoints;
    struct tp_bridge* bridge = NULL;
    MUST(tp_bridge_create(ctx, bridge_toml, NULL, &opts, &bridge));
    size_t n = 0;
    MUST(tp_bridge_mapping_count(bridge, &n));
    CHECK(n == 1);
    struct tp_bridge_mapping m;
    MUST(tp_bridge_get_mapping(bridge, 0, &m));
    CHECK(m.source_stream_id == SOURCE && m.dest_stream_id == DEST);
    CHECK(tp_bridge_get_mapping(bridge, 1, &m) == TP_ERR_INVALID_ARGUMENT);
    CHECK(contains(tp_last_error(), "mapping 1"));

    struct tp_producer_options po;
    MUST(tp_producer_options_init(&po, SOURCE));
    po.use_driver = true;
    po.shm_base_dir = shm;
    po.driver = endpoints;
    struct tp_producer* producer = NULL;
    MUST(tp_producer_new(ctx, &po, &producer));
    struct tp_consumer_options co;
    MUST(tp_consumer_options_init(&co, DEST));
    co.use_driver = true;
    co.allowed_base_dir = shm;
    co.driver = endpoints;
    struct tp_consumer* consumer = NULL;
    MUST(tp_consumer_new(ctx, &co, &consumer));
    const size_t shape[1] = {8};
    struct tp_tensor_spec* spec = NULL;
    MUST(tp_tensor_spec_new(TP_DTYPE_UINT64, TP_ORDER_ROW, 1, shape, NULL, &spec));

    struct seen seen = {{0}, 0, 1};
    const uint64_t deadline = tp_monotonic_ns() + 30ull * 1000000000ull;
    while (seen.n < FRAMES && tp_monotonic_ns() < deadline) {
        struct tp_consumer_status st;
        MUST(tp_consumer_get_status(consumer, &st));
        if (st.state == TP_CONSUMER_MAPPED) {
            struct tp_claim claim;
            MUST(tp_producer_claim(producer, spec, &claim));
            for (size_t i = 0; i < 8; i++) memcpy(claim.data + i * 8, &claim.seq, 8);
            MUST(tp_producer_commit(producer, NULL));
        }
        MUST(tp_producer_do_work(producer, tp_monotonic_ns(), NULL));
        MUST(tp_bridge_do_work(bridge, NULL));
        MUST(tp_consumer_poll(consumer, on_frame, &seen, 16, NULL));
        sleep_1ms();
    }
    struct tp_bridge_counters c;
    MUST(tp_bridge_get_counters(bridge, &c));
    CHECK(seen.n == FRAMES);
    CHECK(seen.bytes_ok);
    for (size_t i = 1; i < seen.n; i++) CHECK(seen.seqs[i] > seen.seqs[i - 1]);
    CHECK(c.frames_sent >= seen.n);
    CHECK(c.chunks_sent >= c.frames_sent);
    CHECK(c.frames_received >= seen.n);
    CHECK(c.announces_forwarded >= 1);
    CHECK(c.announces_received >= 1);
    CHECK(c.crc_errors == 0);
    fprintf(stderr, "bridge: %zu frames at the destination; frames sent %llu, chunks sent %llu, "
                    "frames received %llu, chunk drops %llu, no-announce drops %llu\n",
            seen.n, (unsigned long long)c.frames_sent, (unsigned long long)c.chunks_sent,
            (unsigned long long)c.frames_received, (unsigned long long)c.chunk_drops,
            (unsigned long long)c.no_announce_drops);

    MUST(tp_tensor_spec_free(spec));
    MUST(tp_consumer_free(consumer));
    MUST(tp_producer_free(producer));
    MUST(tp_bridge_close(bridge));
    CHECK(tp_bridge_do_work(bridge, NULL) == TP_ERR_INVALID_HANDLE);
    CHECK(tp_bridge_close(bridge) == TP_ERR_INVALID_HANDLE);
    CHECK(tp_bridge_close(NULL) == TP_OK);
    MUST(tp_driver_stop(driver, 3000));
    MUST(tp_driver_free(driver));
    MUST(tp_context_free(ctx));
    nftw(shm, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (failures != 0) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    fprintf(stderr, "all checks passed\n");
    return 0;
}
