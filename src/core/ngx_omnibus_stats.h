
/*
 * Counters kept in the zone for metrics: latency histograms fed with
 * atomic adds on the hot paths, and per-topic publish counts.
 */


#ifndef _NGX_OMNIBUS_STATS_H_INCLUDED_
#define _NGX_OMNIBUS_STATS_H_INCLUDED_


#define NGX_OMNIBUS_BUCKETS           16
#define NGX_OMNIBUS_TOPIC_STATS       128


typedef struct {
    ngx_atomic_t                bucket[NGX_OMNIBUS_BUCKETS];
    ngx_atomic_t                count;
    ngx_atomic_t                sum_us;
} ngx_omnibus_histogram_t;


typedef struct {
    uint32_t                    hash;
    ngx_atomic_t                count;
    u_char                      len;
    u_char                      topic[NGX_OMNIBUS_TOPIC_MAX];
} ngx_omnibus_topic_stat_t;


/* bucket bounds in microseconds; +Inf is the count */
extern const uint64_t  ngx_omnibus_bounds_us[NGX_OMNIBUS_BUCKETS];
extern const uint64_t  ngx_omnibus_bounds_rows[NGX_OMNIBUS_BUCKETS];


void ngx_omnibus_histogram_observe(ngx_omnibus_histogram_t *h, uint64_t us);
void ngx_omnibus_histogram_observe_rows(ngx_omnibus_histogram_t *h,
    uint64_t n);
void ngx_omnibus_topic_count_locked(ngx_omnibus_topic_stat_t *topics,
    ngx_atomic_t *other, ngx_str_t *topic);
uint64_t ngx_omnibus_now_us(void);
uint64_t ngx_omnibus_now_ms(void);


#endif /* _NGX_OMNIBUS_STATS_H_INCLUDED_ */
