
/*
 * Fan-out across pods.  A message entering a retain ring here is relayed
 * by the worker that dispatched it: XADD to the zone's stream (bounded by
 * MAXLEN), from an outbox that keeps it until Redis confirms, so nothing
 * is skipped over a reconnect or a Redis restart (resent entries carry
 * the same sender and sequence, and readers skip what they have seen).
 * One worker of each pod reads the stream from the last entry it took,
 * blocking in XREAD on a connection of its own, and puts the other pods'
 * messages into its own retain rings, under their ids: its subscribers
 * get them as they get local ones, once, and can resume from them.
 */


#include <ngx_omnibus_redis.h>


/* a message to relay, in this worker's memory */
typedef struct {
    ngx_queue_t                 queue;
    uint64_t                    seq;
    uint64_t                    born;
    size_t                      topic_len;
    size_t                      len;
    ngx_uint_t                  priority;
    ngx_uint_t                  json;
    u_char                      id[NGX_OMNIBUS_ID_LEN];
    u_char                      data[1];     /* topic, then payload */
} ngx_omnibus_redis_relay_t;


#define NGX_OMNIBUS_REDIS_READ_COUNT  "512"


static void ngx_omnibus_redis_flush(ngx_event_t *ev);
static void ngx_omnibus_redis_relayed(ngx_omnibus_redis_conn_t *rc,
    redisReply *reply, void *data);
static void ngx_omnibus_redis_stream_ready(ngx_omnibus_redis_conn_t *rc);
static void ngx_omnibus_redis_tip(ngx_omnibus_redis_conn_t *rc,
    redisReply *reply, void *data);
static void ngx_omnibus_redis_next(ngx_omnibus_redis_t *rd);
static void ngx_omnibus_redis_take(ngx_omnibus_redis_conn_t *rc,
    redisReply *reply, void *data);
static ngx_int_t ngx_omnibus_redis_entry(ngx_omnibus_redis_t *rd,
    redisReply *entry);
static ngx_int_t ngx_omnibus_redis_seen(ngx_omnibus_redis_t *rd,
    ngx_str_t *origin, uint64_t seq);
static void ngx_omnibus_redis_last(ngx_omnibus_redis_t *rd, u_char *id,
    size_t len);


ngx_int_t
ngx_omnibus_redis_fanout_init(ngx_omnibus_redis_t *rd, ngx_cycle_t *cycle)
{
    ngx_queue_init(&rd->outbox);
    rd->unsent = NULL;

    /*
     * The sender's name: a restarted container may have the same host
     * name and pids, so its start time goes in too, or readers would
     * skip its sequence numbers as seen.
     */

    rd->origin.data = ngx_pnalloc(cycle->pool, rd->node.len + 2
                                               + 2 * NGX_INT64_LEN);
    if (rd->origin.data == NULL) {
        return NGX_ERROR;
    }

    rd->origin.len = ngx_sprintf(rd->origin.data, "%V/%P/%uL", &rd->node,
                                 ngx_pid, ngx_omnibus_now_ms())
                     - rd->origin.data;

    rd->flush.handler = ngx_omnibus_redis_flush;
    rd->flush.data = rd;
    rd->flush.log = cycle->log;

    if (!(rd->iface.features & (1 << NGX_OMNIBUS_CLUSTER_FANOUT))
        || ngx_worker != 0 || !rd->zone->subscribed)
    {
        return NGX_OK;
    }

    /* worker 0 reads for the pod: a blocked XREAD is not a stall */

    ngx_omnibus_redis_conn_init(rd, &rd->stream, "stream",
                                rd->block + rd->timeout);
    rd->stream.ready = ngx_omnibus_redis_stream_ready;

    ngx_omnibus_redis_connect(&rd->stream);

    return NGX_OK;
}


/* under the zone lock: copied out, sent once the lock is let go */

void
ngx_omnibus_redis_relay(ngx_omnibus_zone_t *zone, ngx_omnibus_msg_t *msg)
{
    ngx_omnibus_redis_t        *rd;
    ngx_omnibus_redis_relay_t  *e;

    rd = zone->cluster->data;

    if (!ngx_omnibus_redis_usable(&rd->cmd)) {
        /* this pod's subscribers have it now; the others, once back */
        ngx_omnibus_redis_fallback(rd, NGX_OMNIBUS_CLUSTER_FANOUT);
    }

    if (rd->noutbox >= rd->outbox_max) {
        /* said by the flush, not here: no write(2) under the zone lock */
        (void) ngx_atomic_fetch_add(&zone->sh->cluster.relay_dropped, 1);
        rd->dropped++;

        if (!rd->flush.posted) {
            ngx_post_event(&rd->flush, &ngx_posted_events);
        }

        return;
    }

    e = ngx_alloc(offsetof(ngx_omnibus_redis_relay_t, data)
                  + msg->topic_len + msg->len, rd->log);
    if (e == NULL) {
        (void) ngx_atomic_fetch_add(&zone->sh->cluster.relay_dropped, 1);
        return;
    }

    e->seq = ++rd->relay_seq;
    e->born = msg->born;
    e->topic_len = msg->topic_len;
    e->len = msg->len;
    e->priority = msg->priority;
    e->json = msg->json;
    ngx_memcpy(e->id, msg->id, NGX_OMNIBUS_ID_LEN);
    ngx_memcpy(e->data, ngx_omnibus_msg_topic(msg), msg->topic_len);
    (void) ngx_omnibus_msg_copy_payload(e->data + msg->topic_len, msg);

    ngx_queue_insert_tail(&rd->outbox, &e->queue);
    rd->noutbox++;

    if (rd->unsent == NULL) {
        rd->unsent = &e->queue;
    }

    if (!rd->flush.posted) {
        ngx_post_event(&rd->flush, &ngx_posted_events);
    }
}


void
ngx_omnibus_redis_fanout_ready(ngx_omnibus_redis_t *rd)
{
    rd->unsent = ngx_queue_empty(&rd->outbox) ? NULL
                                              : ngx_queue_head(&rd->outbox);

    if (rd->unsent && !rd->flush.posted) {
        ngx_post_event(&rd->flush, &ngx_posted_events);
    }
}


/* XADD what is not sent yet, pipelined, oldest first */

static void
ngx_omnibus_redis_flush(ngx_event_t *ev)
{
    u_char                      key[512], num[3][NGX_INT_T_LEN];
    u_char                      maxlen[32];
    size_t                      len[25];
    const char                 *argv[25];
    ngx_omnibus_redis_t        *rd;
    ngx_omnibus_redis_relay_t  *e;

    rd = ev->data;

    if (rd->dropped
        && ngx_time() - rd->dropped_logged >= NGX_OMNIBUS_LOG_THROTTLE)
    {
        ngx_log_error(NGX_LOG_WARN, rd->log, 0,
                      "omnibus_redis \"%V\": %ui messages wait to be "
                      "relayed to the other pods: %ui more were not kept",
                      &rd->zone->name, rd->noutbox, rd->dropped);
        rd->dropped_logged = ngx_time();
        rd->dropped = 0;
    }

    argv[0] = "XADD";
    len[0] = 4;
    argv[1] = (char *) key;
    len[1] = ngx_omnibus_redis_key(rd, key, "stream", NULL);
    argv[2] = "MAXLEN";
    len[2] = 6;
    argv[3] = "~";
    len[3] = 1;
    argv[4] = (char *) maxlen;
    len[4] = ngx_sprintf(maxlen, "%ui", rd->stream_max) - maxlen;
    argv[5] = "*";
    len[5] = 1;
    argv[6] = "n";
    len[6] = 1;
    argv[7] = (char *) rd->node.data;
    len[7] = rd->node.len;
    argv[8] = "o";
    len[8] = 1;
    argv[9] = (char *) rd->origin.data;
    len[9] = rd->origin.len;
    argv[10] = "s";
    len[10] = 1;
    argv[12] = "i";
    len[12] = 1;
    argv[14] = "t";
    len[14] = 1;
    argv[16] = "p";
    len[16] = 1;
    argv[18] = "j";
    len[18] = 1;
    argv[20] = "b";
    len[20] = 1;
    argv[22] = "d";
    len[22] = 1;

    while (rd->unsent) {
        e = ngx_queue_data(rd->unsent, ngx_omnibus_redis_relay_t, queue);

        argv[11] = (char *) num[0];
        len[11] = ngx_sprintf(num[0], "%uL", e->seq) - num[0];
        argv[13] = (char *) e->id;
        len[13] = NGX_OMNIBUS_ID_LEN;
        argv[15] = (char *) e->data;
        len[15] = e->topic_len;
        argv[17] = (char *) num[1];
        len[17] = ngx_sprintf(num[1], "%ui", e->priority) - num[1];
        argv[19] = e->json ? "1" : "0";
        len[19] = 1;
        argv[21] = (char *) num[2];
        len[21] = ngx_sprintf(num[2], "%uL", e->born) - num[2];
        argv[23] = (char *) e->data + e->topic_len;
        len[23] = e->len;

        if (ngx_omnibus_redis_send(&rd->cmd, ngx_omnibus_redis_relayed, rd,
                                   24, argv, len, NULL)
            != NGX_OK)
        {
            return;                 /* again when the connection is back */
        }

        rd->unsent = ngx_queue_next(rd->unsent);

        if (rd->unsent == ngx_queue_sentinel(&rd->outbox)) {
            rd->unsent = NULL;
        }
    }
}


/* replies come in order: each is the oldest relay in the outbox */

static void
ngx_omnibus_redis_relayed(ngx_omnibus_redis_conn_t *rc, redisReply *reply,
    void *data)
{
    ngx_omnibus_redis_t  *rd = data;
    ngx_queue_t          *q;

    if (reply == NULL) {
        /* all that was in flight goes again, in order */
        rd->unsent = ngx_queue_empty(&rd->outbox)
                     ? NULL : ngx_queue_head(&rd->outbox);
        return;
    }

    if (ngx_queue_empty(&rd->outbox)) {
        return;
    }

    if (reply->type == REDIS_REPLY_STRING) {
        (void) ngx_atomic_fetch_add(&rd->zone->sh->cluster.relayed, 1);

    } else if (reply->type == REDIS_REPLY_ERROR
               && ngx_strncmp(reply->str, "READONLY", 8) == 0)
    {
        /* a replica now: kept, and sent again on a new connection */
        ngx_omnibus_redis_refused(rc, "XADD", reply, 1);
        return;

    } else {
        ngx_omnibus_redis_refused(rc, "XADD", reply, 0);
        (void) ngx_atomic_fetch_add(&rd->zone->sh->cluster.relay_dropped, 1);
    }

    q = ngx_queue_head(&rd->outbox);

    if (rd->unsent == q) {
        rd->unsent = NULL;          /* cannot be: sent before answered */
    }

    ngx_queue_remove(q);
    rd->noutbox--;

    ngx_free(ngx_queue_data(q, ngx_omnibus_redis_relay_t, queue));
}


void
ngx_omnibus_redis_fanout_exit(ngx_omnibus_redis_t *rd)
{
    ngx_queue_t  *q;

    if (rd->flush.posted) {
        ngx_delete_posted_event(&rd->flush);
    }

    /* what is still here is written now, if it can be without waiting */

    if (rd->cmd.ac && rd->unsent) {
        ngx_omnibus_redis_flush(&rd->flush);
    }

    if (rd->cmd.ac && rd->cmd.c) {
        redisAsyncHandleWrite(rd->cmd.ac);
    }

    if (rd->noutbox) {
        ngx_log_error(NGX_LOG_NOTICE, rd->log, 0,
                      "omnibus_redis \"%V\": %ui message(s) not confirmed "
                      "relayed to the other pods at exit",
                      &rd->zone->name, rd->noutbox);
    }

    while (!ngx_queue_empty(&rd->outbox)) {
        q = ngx_queue_head(&rd->outbox);
        ngx_queue_remove(q);
        ngx_free(ngx_queue_data(q, ngx_omnibus_redis_relay_t, queue));
    }

    rd->noutbox = 0;
    rd->unsent = NULL;
}


/*
 * The reader.  A pod that never read the stream starts at its tip: what
 * was relayed before it existed is not news for it.
 */

static void
ngx_omnibus_redis_stream_ready(ngx_omnibus_redis_conn_t *rc)
{
    u_char                 key[512];
    size_t                 len[6];
    const char            *argv[6];
    ngx_omnibus_redis_t   *rd;

    rd = rc->rd;

    if (rd->zone->sh->cluster.stream_last_len) {
        ngx_omnibus_redis_next(rd);
        return;
    }

    argv[0] = "XREVRANGE";
    len[0] = 9;
    argv[1] = (char *) key;
    len[1] = ngx_omnibus_redis_key(rd, key, "stream", NULL);
    argv[2] = "+";
    len[2] = 1;
    argv[3] = "-";
    len[3] = 1;
    argv[4] = "COUNT";
    len[4] = 5;
    argv[5] = "1";
    len[5] = 1;

    (void) ngx_omnibus_redis_send(rc, ngx_omnibus_redis_tip, rd, 6, argv,
                                  len, NULL);
}


static void
ngx_omnibus_redis_tip(ngx_omnibus_redis_conn_t *rc, redisReply *reply,
    void *data)
{
    ngx_omnibus_redis_t  *rd = data;
    redisReply           *entry;

    if (reply == NULL) {
        return;                     /* the reconnect starts over */
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        ngx_omnibus_redis_refused(rc, "XREVRANGE", reply, 1);
        return;
    }

    if (reply->elements == 0) {
        ngx_omnibus_redis_last(rd, (u_char *) "0-0", 3);

    } else {
        entry = reply->element[0];

        if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 1
            || entry->element[0]->type != REDIS_REPLY_STRING
            || entry->element[0]->len >= NGX_OMNIBUS_STREAM_ID_MAX)
        {
            ngx_omnibus_redis_refused(rc, "XREVRANGE", entry, 1);
            return;
        }

        ngx_omnibus_redis_last(rd, (u_char *) entry->element[0]->str,
                               entry->element[0]->len);
    }

    ngx_omnibus_redis_next(rd);
}


static void
ngx_omnibus_redis_next(ngx_omnibus_redis_t *rd)
{
    u_char                     key[512], block[NGX_INT_T_LEN];
    size_t                     len[8];
    const char                *argv[8];
    ngx_omnibus_cluster_sh_t  *sh;

    if (ngx_exiting) {
        return;                     /* the new workers read from here on */
    }

    sh = &rd->zone->sh->cluster;

    argv[0] = "XREAD";
    len[0] = 5;
    argv[1] = "COUNT";
    len[1] = 5;
    argv[2] = NGX_OMNIBUS_REDIS_READ_COUNT;
    len[2] = sizeof(NGX_OMNIBUS_REDIS_READ_COUNT) - 1;
    argv[3] = "BLOCK";
    len[3] = 5;
    argv[4] = (char *) block;
    len[4] = ngx_sprintf(block, "%M", rd->block) - block;
    argv[5] = "STREAMS";
    len[5] = 7;
    argv[6] = (char *) key;
    len[6] = ngx_omnibus_redis_key(rd, key, "stream", NULL);
    argv[7] = (char *) sh->stream_last;
    len[7] = sh->stream_last_len;

    (void) ngx_omnibus_redis_send(&rd->stream, ngx_omnibus_redis_take, rd,
                                  8, argv, len, NULL);
}


/* [[key, [[id, [field, value, ...]], ...]]], or nil when nothing came */

static void
ngx_omnibus_redis_take(ngx_omnibus_redis_conn_t *rc, redisReply *reply,
    void *data)
{
    ngx_omnibus_redis_t  *rd = data;
    size_t                i, n;
    redisReply           *entries, *entry, *last;

    if (reply == NULL) {
        return;                     /* read again from the last, once back */
    }

    n = 0;
    last = NULL;

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 1
        && reply->element[0]->type == REDIS_REPLY_ARRAY
        && reply->element[0]->elements == 2
        && reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
    {
        entries = reply->element[0]->element[1];

        for (i = 0; i < entries->elements; i++) {
            entry = entries->element[i];

            if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2
                || entry->element[0]->type != REDIS_REPLY_STRING
                || entry->element[0]->len >= NGX_OMNIBUS_STREAM_ID_MAX)
            {
                continue;
            }

            if (ngx_omnibus_redis_entry(rd, entry) == NGX_OK) {
                n++;
            }

            last = entry->element[0];
        }

        if (last) {
            ngx_omnibus_redis_last(rd, (u_char *) last->str, last->len);
        }

    } else if (reply->type != REDIS_REPLY_NIL) {
        /* the reader would stop here: it starts over on a new connection */
        ngx_omnibus_redis_refused(rc, "XREAD", reply, 1);
        return;
    }

    if (n) {
        (void) ngx_atomic_fetch_add(&rd->zone->sh->cluster.received, n);
        ngx_omnibus_fanout_wake(rd->zone);
    }

    ngx_omnibus_redis_next(rd);
}


/* NGX_OK: a message of another pod, now in a retain ring here */

static ngx_int_t
ngx_omnibus_redis_entry(ngx_omnibus_redis_t *rd, redisReply *entry)
{
    size_t                i;
    uint64_t              seq, born;
    ngx_str_t             node, origin, id, f, v;
    ngx_int_t             num, rc;
    redisReply           *fields;
    ngx_omnibus_offer_t   o;

    fields = entry->element[1];

    if (fields->type != REDIS_REPLY_ARRAY) {
        return NGX_DECLINED;
    }

    ngx_memzero(&o, sizeof(ngx_omnibus_offer_t));
    ngx_str_null(&node);
    ngx_str_null(&origin);
    ngx_str_null(&id);
    seq = 0;
    born = 0;

    for (i = 0; i + 1 < fields->elements; i += 2) {
        if (fields->element[i]->type != REDIS_REPLY_STRING
            || fields->element[i + 1]->type != REDIS_REPLY_STRING
            || fields->element[i]->len != 1)
        {
            return NGX_DECLINED;
        }

        f.data = (u_char *) fields->element[i]->str;
        v.data = (u_char *) fields->element[i + 1]->str;
        v.len = fields->element[i + 1]->len;

        switch (f.data[0]) {

        case 'n':
            node = v;
            break;

        case 'o':
            origin = v;
            break;

        case 's':
            num = ngx_atoof(v.data, v.len);
            seq = (num == NGX_ERROR) ? 0 : (uint64_t) num;
            break;

        case 'i':
            id = v;
            break;

        case 't':
            o.topic = v;
            break;

        case 'p':
            o.priority = (v.len == 1 && v.data[0] >= '0' && v.data[0] <= '9')
                         ? (ngx_uint_t) (v.data[0] - '0') : 0;
            break;

        case 'j':
            o.json = (v.len == 1 && v.data[0] == '1');
            break;

        case 'b':
            num = ngx_atoof(v.data, v.len);
            born = (num == NGX_ERROR) ? 0 : (uint64_t) num;
            break;

        case 'd':
            o.payload = v;
            break;
        }
    }

    /* ours were fed to our subscribers when dispatched */

    if (node.len == rd->node.len
        && ngx_strncmp(node.data, rd->node.data, node.len) == 0)
    {
        return NGX_DECLINED;
    }

    if (id.len != NGX_OMNIBUS_ID_LEN || seq == 0 || origin.len == 0
        || ngx_omnibus_topic_valid(&o.topic) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    /* under the lock: an old reader may still run beside a new one */

    ngx_shmtx_lock(&rd->zone->shpool->mutex);
    rc = ngx_omnibus_redis_seen(rd, &origin, seq);
    ngx_shmtx_unlock(&rd->zone->shpool->mutex);

    if (rc != NGX_OK) {
        (void) ngx_atomic_fetch_add(&rd->zone->sh->cluster.resent, 1);
        return NGX_DECLINED;
    }

    if (ngx_omnibus_fanout_remote(rd->zone, &o, id.data, born) != NGX_OK) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * NGX_OK: news from that sender; a resent entry was seen already.  Kept
 * in the zone: a reader that replaces a dead one skips what it skipped.
 */

static ngx_int_t
ngx_omnibus_redis_seen(ngx_omnibus_redis_t *rd, ngx_str_t *origin,
    uint64_t seq)
{
    ngx_uint_t                     i;
    ngx_omnibus_cluster_origin_t  *or, *oldest;

    if (origin->len > NGX_OMNIBUS_ORIGIN_LEN) {
        return NGX_OK;              /* not ours to check: a longer node */
    }

    or = rd->zone->sh->cluster.origins;
    oldest = &or[0];

    for (i = 0; i < NGX_OMNIBUS_CLUSTER_ORIGINS; i++) {
        if (or[i].len == origin->len
            && ngx_strncmp(or[i].name, origin->data, origin->len) == 0)
        {
            if (seq <= or[i].seq) {
                return NGX_DECLINED;
            }

            or[i].seq = seq;
            or[i].seen = ngx_time();
            return NGX_OK;
        }

        if (or[i].seen < oldest->seen) {
            oldest = &or[i];
        }
    }

    /* senders come and go with their workers: the quietest one goes */

    ngx_memcpy(oldest->name, origin->data, origin->len);
    oldest->len = origin->len;
    oldest->seq = seq;
    oldest->seen = ngx_time();

    return NGX_OK;
}


/* where the pod's reader goes on from, even as another process */

static void
ngx_omnibus_redis_last(ngx_omnibus_redis_t *rd, u_char *id, size_t len)
{
    ngx_omnibus_cluster_sh_t  *sh;

    sh = &rd->zone->sh->cluster;

    ngx_shmtx_lock(&rd->zone->shpool->mutex);
    ngx_memcpy(sh->stream_last, id, len);
    sh->stream_last_len = len;
    ngx_shmtx_unlock(&rd->zone->shpool->mutex);
}
