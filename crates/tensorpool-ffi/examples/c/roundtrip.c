/* tensorpool from C (C11, tensorpool.h only): a producer and a consumer in one process.
 *
 *   roundtrip [FRAMES]      default 100 frames
 *
 * The process hosts an Aeron media driver (tp_context_new_embedded, in a private directory)
 * and runs standalone (no SHM driver): the producer creates its header ring and payload pool
 * under a fresh directory in /dev/shm, the consumer maps them read-only from the announces.
 * Each frame is a 4 x 8 float32 tensor whose every value is its sequence number; the
 * consumer checks shape, dtype and values, rechecks the slot, and counts. Exit status 0 when
 * every frame sent was received intact (the last few may still be in flight when the
 * producer stops: the consumer keeps polling until it saw them or a deadline passes).
 *
 * Compiled by ctest with -std=c11 -Wall -Wextra -Werror -pedantic. */
#define _XOPEN_SOURCE 700

#include <tensorpool.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM 10000u
#define ROWS 4u
#define COLS 8u

/* A call that must succeed: prints the status name and the library's message, then exits. */
#define MUST(call)                                                                           \
    do {                                                                                     \
        enum tp_status s_ = (call);                                                          \
        if (s_ != TP_OK) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call,                \
                    tp_status_name((int)s_), tp_last_error());                               \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

struct tally {
    uint64_t received; /* frames that passed recheck */
    uint64_t bad;      /* frames with a wrong shape, dtype or value */
    uint64_t late;     /* frames overwritten while read (none expected at this pace) */
    uint64_t last_seq;
};

/* Runs on the polling thread for each accepted frame; `f` is valid only during the call. */
static void on_frame(const struct tp_frame_view* f, void* user) {
    struct tally* t = (struct tally*)user;
    int ok = f->dtype == TP_DTYPE_FLOAT32 && f->ndims == 2 && f->shape[0] == ROWS &&
             f->shape[1] == COLS && f->len == ROWS * COLS * sizeof(float);
    for (size_t i = 0; ok && i < ROWS * COLS; i++) {
        float v;
        memcpy(&v, f->data + i * sizeof v, sizeof v); /* the slot, in place: no copy before */
        ok = v == (float)f->seq;
    }
    /* What was read counts only if the slot still holds this committed frame. */
    if (tp_frame_recheck(f) != TP_OK) {
        t->late++;
        return;
    }
    t->received++;
    t->last_seq = f->seq;
    if (!ok) t->bad++;
}

static int rm_entry(const char* path, const struct stat* sb, int flag, struct FTW* ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int main(int argc, char** argv) {
    const uint64_t frames = argc > 1 ? strtoull(argv[1], NULL, 10) : 100;
    char shm[] = "/dev/shm/tp-c-roundtrip-XXXXXX";
    if (mkdtemp(shm) == NULL) {
        perror("mkdtemp");
        return 2;
    }
    printf("tensorpool %s (SHM layout %u), C example\n", tp_version(), (unsigned)tp_layout_version());

    /* The media driver inside this process, in a private Aeron directory (NULL). */
    struct tp_context* ctx = NULL;
    MUST(tp_context_new_embedded(NULL, &ctx));

    struct tp_producer_options popts;
    MUST(tp_producer_options_init(&popts, STREAM));
    popts.shm_base_dir = shm; /* standalone: this process creates the files */
    popts.header_nslots = 16;
    popts.prefault = false;
    struct tp_producer* producer = NULL;
    MUST(tp_producer_new(ctx, &popts, &producer));

    struct tp_consumer_options copts;
    MUST(tp_consumer_options_init(&copts, STREAM));
    copts.allowed_base_dir = shm; /* maps only files under this directory */
    struct tp_consumer* consumer = NULL;
    MUST(tp_consumer_new(ctx, &copts, &consumer));

    const size_t shape[2] = {ROWS, COLS};
    struct tp_tensor_spec* spec = NULL;
    MUST(tp_tensor_spec_new(TP_DTYPE_FLOAT32, TP_ORDER_ROW, 2, shape, NULL, &spec));

    struct tp_idle* idle = NULL;
    MUST(tp_idle_new("sleep:1ms", &idle));

    /* The consumer maps the producer's regions from its announce (sent by do_work). */
    struct tally t = {0, 0, 0, 0};
    const uint64_t map_deadline = tp_monotonic_ns() + 10000000000ull;
    for (;;) {
        size_t work = 0, w = 0;
        MUST(tp_producer_do_work(producer, tp_monotonic_ns(), &work));
        MUST(tp_consumer_poll(consumer, on_frame, &t, 16, &w));
        struct tp_consumer_status st;
        MUST(tp_consumer_get_status(consumer, &st));
        if (st.state == TP_CONSUMER_MAPPED) break;
        if (tp_monotonic_ns() > map_deadline) {
            fprintf(stderr, "the consumer did not map the producer's regions within 10 s\n");
            return 1;
        }
        MUST(tp_idle_work(idle, work + w));
    }

    /* Claim, write in place, commit; the consumer polls between frames. */
    uint64_t last_sent = 0;
    for (uint64_t n = 0; n < frames; n++) {
        struct tp_claim claim;
        MUST(tp_producer_claim(producer, spec, &claim));
        for (size_t i = 0; i < ROWS * COLS; i++) {
            const float v = (float)claim.seq;
            memcpy(claim.data + i * sizeof v, &v, sizeof v);
        }
        MUST(tp_producer_commit(producer, &last_sent));
        size_t work = 0;
        MUST(tp_producer_do_work(producer, tp_monotonic_ns(), &work));
        MUST(tp_consumer_poll(consumer, on_frame, &t, 16, NULL));
    }
    /* The last descriptors may still be on their way through the media driver. */
    const uint64_t drain_deadline = tp_monotonic_ns() + 10000000000ull;
    while (t.received + t.late < frames && tp_monotonic_ns() < drain_deadline) {
        size_t work = 0, w = 0;
        MUST(tp_producer_do_work(producer, tp_monotonic_ns(), &work));
        MUST(tp_consumer_poll(consumer, on_frame, &t, 16, &w));
        MUST(tp_idle_work(idle, work + w));
    }

    struct tp_consumer_counters c;
    MUST(tp_consumer_get_counters(consumer, &c));
    printf("sent %llu frames (last seq %llu); received %llu (last seq %llu), bad %llu, late %llu, "
           "drops %llu\n",
           (unsigned long long)frames, (unsigned long long)last_sent, (unsigned long long)t.received,
           (unsigned long long)t.last_seq, (unsigned long long)t.bad, (unsigned long long)t.late,
           (unsigned long long)c.drops_total);
    const int ok = t.received == frames && t.bad == 0 && c.drops_total == 0;

    /* Every handle is freed once (the producer removes its standalone files as it closes). */
    MUST(tp_idle_free(idle));
    MUST(tp_tensor_spec_free(spec));
    MUST(tp_consumer_free(consumer));
    MUST(tp_producer_free(producer));
    MUST(tp_context_free(ctx));
    nftw(shm, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return ok ? 0 : 1;
}
