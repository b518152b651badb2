
/*
 * Counters for metrics: latency histograms fed with atomic adds on the
 * hot paths, per-topic publish counts, and the clocks they are read by.
 */


#include <ngx_omnibus_core.h>


const uint64_t  ngx_omnibus_bounds_us[NGX_OMNIBUS_BUCKETS] = {
    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000
};


const uint64_t  ngx_omnibus_bounds_rows[NGX_OMNIBUS_BUCKETS] = {
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
    32768
};


/* a histogram of counts (rows in a batch), on the bounds above */

void
ngx_omnibus_histogram_observe_rows(ngx_omnibus_histogram_t *h, uint64_t n)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_OMNIBUS_BUCKETS; i++) {
        if (n <= ngx_omnibus_bounds_rows[i]) {
            (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->count, 1);
    (void) ngx_atomic_fetch_add(&h->sum_us, n);
}


void
ngx_omnibus_histogram_observe(ngx_omnibus_histogram_t *h, uint64_t us)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_OMNIBUS_BUCKETS; i++) {
        if (us <= ngx_omnibus_bounds_us[i]) {
            (void) ngx_atomic_fetch_add(&h->bucket[i], 1);
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&h->count, 1);
    (void) ngx_atomic_fetch_add(&h->sum_us, us);
}


/* open addressing; once the table is full new topics count as "other" */

void
ngx_omnibus_topic_count_locked(ngx_omnibus_topic_stat_t *topics,
    ngx_atomic_t *other, ngx_str_t *topic)
{
    uint32_t                   h;
    ngx_uint_t                 i, slot;
    ngx_omnibus_topic_stat_t  *ts;

    h = ngx_omnibus_topic_hash(topic->data, topic->len);

    for (i = 0; i < NGX_OMNIBUS_TOPIC_STATS; i++) {
        slot = (h + i) % NGX_OMNIBUS_TOPIC_STATS;
        ts = &topics[slot];

        if (ts->len == 0) {
            ts->hash = h;
            ts->len = (u_char) topic->len;
            ngx_memcpy(ts->topic, topic->data, topic->len);
            ts->count = 1;
            return;
        }

        if (ts->hash == h && ts->len == topic->len
            && ngx_memcmp(ts->topic, topic->data, topic->len) == 0)
        {
            ts->count++;
            return;
        }
    }

    (*other)++;
}


/* monotonic: for durations */

uint64_t
ngx_omnibus_now_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* wall clock, as cached by the event loop: for ages across processes */

uint64_t
ngx_omnibus_now_ms(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (uint64_t) tp->sec * 1000 + tp->msec;
}
