
/*
 * The bus zone: omnibus_zone's parameters, the shared memory layout, and
 * adoption of a zone kept over a reload, which checks the layout first,
 * as limit_req checks its key.  Routes claim slots in the zone, found
 * again by their identity after a reload.
 */


#include <ngx_omnibus_core.h>


static ngx_int_t ngx_omnibus_zone_init(ngx_shm_zone_t *shm_zone, void *data);
static ngx_int_t ngx_omnibus_zone_adopt(ngx_omnibus_zone_t *zone,
    ngx_slab_pool_t *shpool, ngx_log_t *log);
static void ngx_omnibus_zone_slots_locked(ngx_omnibus_zone_t *zone);
static ngx_int_t ngx_omnibus_zone_replace(ngx_omnibus_zone_t *zone,
    ngx_log_t *log);
static void ngx_omnibus_zone_unretire(void *data);
static char *ngx_omnibus_zone_param(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value);
static ngx_int_t ngx_omnibus_parse_percent(u_char *p, size_t len);


ngx_uint_t  ngx_omnibus_workers = 1;


/* a worker's slot for its store counters: free, or of a process gone */

ngx_omnibus_store_proc_t *
ngx_omnibus_store_proc(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t                 i;
    ngx_omnibus_store_proc_t  *p, *found;

    found = NULL;

    ngx_shmtx_lock(&zone->shpool->mutex);

    for (i = 0; i < NGX_OMNIBUS_STORE_PROCS; i++) {
        p = &zone->sh->store.procs[i];

        if (p->pid == 0
            || (kill(p->pid, 0) == -1 && ngx_errno == NGX_ESRCH))
        {
            ngx_memzero(p, sizeof(ngx_omnibus_store_proc_t));
            p->pid = ngx_pid;
            found = p;
            break;
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return found;
}


/* the live workers' counters summed (each read as it is: a gauge) */

void
ngx_omnibus_store_totals(ngx_omnibus_sh_t *sh, ngx_omnibus_store_proc_t *t)
{
    ngx_uint_t                 i, k;
    ngx_omnibus_store_proc_t  *p;

    ngx_memzero(t, sizeof(ngx_omnibus_store_proc_t));

    for (i = 0; i < NGX_OMNIBUS_STORE_PROCS; i++) {
        p = &sh->store.procs[i];

        if (p->pid == 0
            || (kill(p->pid, 0) == -1 && ngx_errno == NGX_ESRCH))
        {
            continue;
        }

        t->up += p->up;
        t->backlog += p->backlog;

        for (k = 0; k < 3; k++) {
            t->connections[k] += p->connections[k];
        }
    }
}


ngx_omnibus_zone_t *
ngx_omnibus_zone_create(ngx_conf_t *cf)
{
    ngx_omnibus_zone_t  *zone;

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_omnibus_zone_t));
    if (zone == NULL) {
        return NULL;
    }

    zone->cycle = cf->cycle;

    zone->shards = 8;
    zone->min_shards = 2;
    zone->max_shards = 16;
    zone->queue_size = 10000;
    zone->concurrency = 4;
    zone->dedup_ttl = 3600;
    zone->dlq_size = 10000;
    zone->retain = 1000;
    zone->bp_high = 80;
    zone->bp_low = 50;

    if (ngx_array_init(&zone->routes, cf->pool, 4,
                       sizeof(ngx_omnibus_route_t *))
        != NGX_OK
        || ngx_array_init(&zone->slots, cf->pool, 4,
                          sizeof(ngx_omnibus_slot_t *))
           != NGX_OK
        || ngx_array_init(&zone->inputs, cf->pool, 1, sizeof(void *))
           != NGX_OK)
    {
        return NULL;
    }

    return zone;
}


/* omnibus_zone's parameters: zone=NAME:SIZE and the rest */

char *
ngx_omnibus_zone_parse(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value, ngx_uint_t nvalue, ssize_t *size)
{
    size_t      min;
    ngx_str_t   s;
    ngx_uint_t  i;

    *size = 0;

    for (i = 0; i < nvalue; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            zone->name.data = s.data;
            zone->name.len = 0;

            while (zone->name.len < s.len
                   && s.data[zone->name.len] != ':')
            {
                zone->name.len++;
            }

            if (zone->name.len == 0 || zone->name.len + 1 >= s.len) {
                ngx_omnibus_conf_error(cf,
                                       "invalid zone \"%V\", expected "
                                       "zone=NAME:SIZE", &value[i]);
                return NGX_CONF_ERROR;
            }

            s.data += zone->name.len + 1;
            s.len -= zone->name.len + 1;

            *size = ngx_parse_size(&s);
            if (*size == NGX_ERROR) {
                ngx_omnibus_conf_error(cf,
                                       "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_omnibus_zone_param(cf, zone, &value[i]) != NGX_CONF_OK) {
            return NGX_CONF_ERROR;
        }
    }

    if (zone->name.len == 0) {
        ngx_omnibus_conf_error(cf, "a \"zone=NAME:SIZE\" parameter is "
                               "required");
        return NGX_CONF_ERROR;
    }

    if (zone->max_shards > NGX_OMNIBUS_MAX_SHARDS
        || zone->min_shards == 0
        || zone->min_shards > zone->shards
        || zone->shards > zone->max_shards)
    {
        ngx_omnibus_conf_error(cf,
                               "omnibus zone \"%V\": shards must satisfy "
                               "1 <= min_shards <= shards <= max_shards <= %d",
                               &zone->name, NGX_OMNIBUS_MAX_SHARDS);
        return NGX_CONF_ERROR;
    }

    if (zone->bp_low >= zone->bp_high || zone->bp_high > 100) {
        ngx_omnibus_conf_error(cf,
                               "omnibus zone \"%V\": backpressure must be "
                               "HIGH%%:LOW%% with LOW < HIGH <= 100",
                               &zone->name);
        return NGX_CONF_ERROR;
    }

    /* the layout plus room for a few messages per shard */
    min = sizeof(ngx_omnibus_sh_t)
          + zone->max_shards * (sizeof(ngx_omnibus_shard_t) + 4 * 1024)
          + 16 * ngx_pagesize;

    if ((size_t) *size < min) {
        ngx_omnibus_conf_error(cf,
                               "omnibus zone \"%V\" is too small for "
                               "max_shards=%ui: %z bytes, needs at least %uz",
                               &zone->name, zone->max_shards, *size, min);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_omnibus_zone_shm(ngx_conf_t *cf, ngx_omnibus_zone_t *zone, size_t size,
    void *tag)
{
    zone->shm_zone = ngx_shared_memory_add(cf, &zone->name, size, tag);
    if (zone->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (zone->shm_zone->data) {
        ngx_omnibus_conf_error(cf,
                               "shared memory zone \"%V\" is already used by "
                               "another module", &zone->name);
        return NGX_CONF_ERROR;
    }

    zone->shm_zone->init = ngx_omnibus_zone_init;
    zone->shm_zone->data = zone;

    return NGX_CONF_OK;
}


/* a route claims a slot; the zone gives it one when it is (re)created */

ngx_int_t
ngx_omnibus_zone_add_slot(ngx_omnibus_zone_t *zone, ngx_omnibus_slot_t *slot)
{
    ngx_omnibus_slot_t  **sp;

    if (zone->slots.nelts == NGX_OMNIBUS_MAX_ROUTES) {
        return NGX_DECLINED;
    }

    sp = ngx_array_push(&zone->slots);
    if (sp == NULL) {
        return NGX_ERROR;
    }

    *sp = slot;

    return NGX_OK;
}


static char *
ngx_omnibus_zone_param(ngx_conf_t *cf, ngx_omnibus_zone_t *zone,
    ngx_str_t *value)
{
    u_char      *colon;
    ngx_int_t    n, high, low;
    ngx_str_t    v;
    ngx_uint_t   i;

    static struct {
        ngx_str_t    name;
        size_t       offset;
        ngx_int_t    min;
        ngx_int_t    max;
    } params[] = {
        { ngx_string("shards="), offsetof(ngx_omnibus_zone_t, shards),
          1, NGX_OMNIBUS_MAX_SHARDS },
        { ngx_string("min_shards="), offsetof(ngx_omnibus_zone_t, min_shards),
          1, NGX_OMNIBUS_MAX_SHARDS },
        { ngx_string("max_shards="), offsetof(ngx_omnibus_zone_t, max_shards),
          1, NGX_OMNIBUS_MAX_SHARDS },
        { ngx_string("queue_size="), offsetof(ngx_omnibus_zone_t, queue_size),
          1, 100000000 },
        { ngx_string("concurrency="),
          offsetof(ngx_omnibus_zone_t, concurrency), 1, 1024 },
        { ngx_string("dlq_size="), offsetof(ngx_omnibus_zone_t, dlq_size),
          1, 100000000 },
        { ngx_string("retain="), offsetof(ngx_omnibus_zone_t, retain),
          0, 100000000 },
    };

    for (i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        if (value->len <= params[i].name.len
            || ngx_strncmp(value->data, params[i].name.data,
                           params[i].name.len)
               != 0)
        {
            continue;
        }

        n = ngx_atoi(value->data + params[i].name.len,
                     value->len - params[i].name.len);

        if (n == NGX_ERROR || n < params[i].min || n > params[i].max) {
            ngx_omnibus_conf_error(cf,
                                   "invalid \"%V\": expected a number from "
                                   "%i to %i", value, params[i].min,
                                   params[i].max);
            return NGX_CONF_ERROR;
        }

        *(ngx_uint_t *) ((char *) zone + params[i].offset) = n;
        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value->data, "dedup_ttl=", 10) == 0) {
        v.data = value->data + 10;
        v.len = value->len - 10;

        zone->dedup_ttl = ngx_parse_time(&v, 1);
        if (zone->dedup_ttl == (time_t) NGX_ERROR || zone->dedup_ttl == 0) {
            ngx_omnibus_conf_error(cf,
                                   "invalid \"%V\": expected a time such as "
                                   "3600s or 1h", value);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (ngx_strncmp(value->data, "backpressure=", 13) == 0) {
        v.data = value->data + 13;
        v.len = value->len - 13;

        colon = ngx_strlchr(v.data, v.data + v.len, ':');
        if (colon == NULL) {
            goto invalid_bp;
        }

        high = ngx_omnibus_parse_percent(v.data, colon - v.data);
        low = ngx_omnibus_parse_percent(colon + 1,
                                        v.data + v.len - colon - 1);
        if (high == NGX_ERROR || low == NGX_ERROR) {
            goto invalid_bp;
        }

        zone->bp_high = high;
        zone->bp_low = low;

        return NGX_CONF_OK;

    invalid_bp:

        ngx_omnibus_conf_error(cf,
                               "invalid \"%V\": expected "
                               "backpressure=HIGH%%:LOW%%", value);
        return NGX_CONF_ERROR;
    }

    ngx_omnibus_conf_error(cf,
                           "invalid parameter \"%V\"", value);

    return NGX_CONF_ERROR;
}


static ngx_int_t
ngx_omnibus_parse_percent(u_char *p, size_t len)
{
    ngx_int_t  n;

    if (len < 2 || p[len - 1] != '%') {
        return NGX_ERROR;
    }

    n = ngx_atoi(p, len - 1);
    if (n == NGX_ERROR || n > 100) {
        return NGX_ERROR;
    }

    return n;
}


/* a reload may change limits; the queues themselves stay as they are */

static void
ngx_omnibus_zone_apply(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t         i, n;
    ngx_omnibus_sh_t  *sh;

    sh = zone->sh;

    sh->queue_size = zone->queue_size;
    sh->retain = zone->retain;
    sh->dlq_max = zone->dlq_size;
    sh->bp_high = ngx_max(zone->queue_size * zone->bp_high / 100, 1);
    sh->bp_low = zone->queue_size * zone->bp_low / 100;

    n = ngx_min(ngx_max(sh->nshards, zone->min_shards), zone->max_shards);

    if (n != sh->nshards) {
        sh->nshards = n;
        sh->ring_version++;
    }

    for (i = 0; i < sh->cap_shards; i++) {
        if (sh->shards[i].concurrency == 0) {
            sh->shards[i].concurrency = zone->concurrency;
        }
    }
}


static ngx_int_t
ngx_omnibus_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_omnibus_zone_t *ozone = data;

    size_t                len;
    ngx_uint_t            i;
    ngx_time_t           *tp;
    ngx_slab_pool_t      *shpool;
    ngx_omnibus_sh_t     *sh;
    ngx_omnibus_zone_t   *zone;
    ngx_omnibus_shard_t  *shard;

    zone = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (ozone) {
        return ngx_omnibus_zone_adopt(zone, shpool, shm_zone->shm.log);
    }

    if (ngx_omnibus_zone_replace(zone, shm_zone->shm.log) != NGX_OK) {
        return NGX_ERROR;
    }

    zone->shpool = shpool;

    if (shm_zone->shm.exists) {
        zone->sh = shpool->data;
        return NGX_OK;
    }

    len = sizeof(ngx_omnibus_sh_t)
          + (zone->max_shards - 1) * sizeof(ngx_omnibus_shard_t);

    sh = ngx_slab_calloc(shpool, len);
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;
    zone->sh = sh;

    sh->magic = NGX_OMNIBUS_MAGIC;
    sh->layout = NGX_OMNIBUS_LAYOUT;
    sh->sh_size = sizeof(ngx_omnibus_sh_t);
    sh->shard_size = sizeof(ngx_omnibus_shard_t);
    sh->msg_size = sizeof(ngx_omnibus_msg_t);

    sh->cap_shards = zone->max_shards;
    sh->nshards = zone->shards;
    sh->ring_version = 1;

    /* message ids stay unique across restarts and pods */
    tp = ngx_timeofday();
    sh->instance = (uint64_t) tp->sec * 1000 + tp->msec;
    sh->instance_rand = (uint32_t) ngx_random() ^ (uint32_t) ngx_pid;

    ngx_rbtree_init(&sh->dedup, &sh->dedup_sentinel,
                    ngx_omnibus_index_rbtree_insert);
    ngx_queue_init(&sh->dedup_lru);

    ngx_rbtree_init(&sh->limits, &sh->limits_sentinel,
                    ngx_omnibus_index_rbtree_insert);
    ngx_queue_init(&sh->limits_lru);

    ngx_queue_init(&sh->dlq);

    for (i = 0; i < sh->cap_shards; i++) {
        shard = &sh->shards[i];
        ngx_queue_init(&shard->high);
        ngx_queue_init(&shard->normal);
        ngx_queue_init(&shard->inflight);
        ngx_queue_init(&shard->retain);
    }

    ngx_omnibus_zone_apply(zone);
    ngx_omnibus_zone_slots_locked(zone);

    len = sizeof(" in omnibus zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in omnibus zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* running out is an expected state answered with 503, not a [crit] */
    shpool->log_nomem = 0;

    return NGX_OK;
}


/*
 * A zone of the same name and size kept over a reload.  What it holds was
 * laid out by the module that created it, perhaps another build: adopt
 * it only if the layout is the same, else the reload fails.  The old
 * configuration's structures are that build's too: the zone is found
 * from the shared memory itself.
 */

static ngx_int_t
ngx_omnibus_zone_adopt(ngx_omnibus_zone_t *zone, ngx_slab_pool_t *shpool,
    ngx_log_t *log)
{
    ngx_omnibus_sh_t  *sh;

    sh = shpool->data;

    if (sh->magic != NGX_OMNIBUS_MAGIC
        || sh->layout != NGX_OMNIBUS_LAYOUT
        || sh->sh_size != sizeof(ngx_omnibus_sh_t)
        || sh->shard_size != sizeof(ngx_omnibus_shard_t)
        || sh->msg_size != sizeof(ngx_omnibus_msg_t))
    {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "omnibus zone \"%V\" was created by a module build "
                      "with another memory layout (version %uD, %uD bytes; "
                      "this build: version %d, %uz bytes) and cannot be "
                      "adopted: restart nginx, or give the zone a new name "
                      "or size", &zone->name, sh->layout, sh->sh_size,
                      NGX_OMNIBUS_LAYOUT, sizeof(ngx_omnibus_sh_t));
        return NGX_ERROR;
    }

    if (zone->max_shards > sh->cap_shards) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "omnibus zone \"%V\" was created with "
                      "max_shards=%ui and keeps its queued messages "
                      "over a reload: max_shards cannot grow to %ui "
                      "without a new zone name or size",
                      &zone->name, sh->cap_shards, zone->max_shards);
        return NGX_ERROR;
    }

    zone->sh = sh;
    zone->shpool = shpool;

    ngx_shmtx_lock(&zone->shpool->mutex);

    /* the pointers point into this load of the module */
    sh->dedup.insert = ngx_omnibus_index_rbtree_insert;
    sh->limits.insert = ngx_omnibus_index_rbtree_insert;

    ngx_omnibus_zone_apply(zone);
    ngx_omnibus_zone_slots_locked(zone);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return NGX_OK;
}


/*
 * A zone of the same name but another size in the running configuration
 * is not adopted by NGINX: a new one is made, and the old one goes with
 * the old workers.  Refuse the reload while the old zone holds messages;
 * when it is empty, retire it, so that publishes still in progress on
 * the old workers are refused (503, retried elsewhere) instead of landing
 * where nobody will dispatch them.  If this configuration fails to load
 * after all, the old zone comes back into service.
 */

static ngx_int_t
ngx_omnibus_zone_replace(ngx_omnibus_zone_t *zone, ngx_log_t *log)
{
    ngx_uint_t           i, s, held;
    ngx_shm_t           *old;
    ngx_list_part_t     *part;
    ngx_shm_zone_t      *shm;
    ngx_slab_pool_t     *shpool;
    ngx_omnibus_sh_t    *sh;
    ngx_pool_cleanup_t  *cln;

    /* ngx_cycle is still the running configuration's */
    part = (ngx_list_part_t *) &ngx_cycle->shared_memory.part;
    shm = part->elts;
    old = NULL;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            shm = part->elts;
            i = 0;
        }

        if (shm[i].tag == zone->shm_zone->tag
            && shm[i].shm.name.len == zone->name.len
            && ngx_strncmp(shm[i].shm.name.data, zone->name.data,
                           zone->name.len)
               == 0)
        {
            old = &shm[i].shm;
            break;
        }
    }

    /* the old zone as its own build laid it out, found from its memory */

    if (old == NULL || old->addr == NULL) {
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) old->addr;
    sh = shpool->data;

    if (sh == NULL || sh->magic != NGX_OMNIBUS_MAGIC
        || sh->layout != NGX_OMNIBUS_LAYOUT)
    {
        return NGX_OK;
    }

    held = 0;

    ngx_shmtx_lock(&shpool->mutex);

    for (s = 0; s < sh->cap_shards; s++) {
        held += sh->shards[s].queued + sh->shards[s].ninflight;
    }

    held += sh->dlq_size;

    if (held == 0) {
        sh->retired = 1;
    }

    ngx_shmtx_unlock(&shpool->mutex);

    if (held) {
        ngx_log_error(NGX_LOG_EMERG, log, 0,
                      "omnibus zone \"%V\" changes size from %uz to %uz "
                      "while it holds %ui message(s) queued, in flight or "
                      "dead-lettered, which a new zone would lose: keep its "
                      "size until it is empty", &zone->name, old->size,
                      zone->shm_zone->shm.size, held);
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(zone->cycle->pool, 0);
    if (cln == NULL) {
        sh->retired = 0;
        return NGX_ERROR;
    }

    cln->handler = ngx_omnibus_zone_unretire;
    cln->data = zone;
    zone->retiring = sh;

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "omnibus zone \"%V\" changes size from %uz to %uz: "
                  "publishes still in progress on the old workers get 503",
                  &zone->name, old->size, zone->shm_zone->shm.size);

    return NGX_OK;
}


/* the new configuration failed to load: the old zone serves on */

static void
ngx_omnibus_zone_unretire(void *data)
{
    ngx_omnibus_zone_t *zone = data;

    if (zone->retiring) {
        zone->retiring->retired = 0;
        zone->retiring = NULL;
    }
}


/* the configuration is in force: the retired zone goes with the old one */

void
ngx_omnibus_zone_commit(ngx_omnibus_zone_t *zone)
{
    zone->retiring = NULL;
}


/* in the master, when the zone is created or adopted */

static void
ngx_omnibus_zone_slots_locked(ngx_omnibus_zone_t *zone)
{
    ngx_uint_t               i, s, found;
    ngx_omnibus_sh_t        *sh;
    ngx_omnibus_slot_t     **slots;
    ngx_omnibus_route_sh_t  *rs;

    sh = zone->sh;
    slots = zone->slots.elts;

    for (s = 0; s < NGX_OMNIBUS_MAX_ROUTES; s++) {
        sh->routes[s].used = 0;
    }

    for (i = 0; i < zone->slots.nelts; i++) {
        found = NGX_OMNIBUS_MAX_ROUTES;

        /* the route's own slot, else a never used one, else any free */

        for (s = 0; s < NGX_OMNIBUS_MAX_ROUTES; s++) {
            rs = &sh->routes[s];

            if (rs->identity == slots[i]->identity && !rs->used) {
                found = s;
                break;
            }

            if (found == NGX_OMNIBUS_MAX_ROUTES && rs->identity == 0) {
                found = s;
            }
        }

        for (s = 0; found == NGX_OMNIBUS_MAX_ROUTES
                    && s < NGX_OMNIBUS_MAX_ROUTES; s++)
        {
            if (!sh->routes[s].used) {
                found = s;
            }
        }

        rs = &sh->routes[found];

        if (rs->identity != slots[i]->identity) {
            ngx_memzero(rs, sizeof(ngx_omnibus_route_sh_t));
            rs->identity = slots[i]->identity;
        }

        rs->used = 1;
        slots[i]->index = found;
    }
}


/* the shards on the ring, and one being drained after them */

ngx_uint_t
ngx_omnibus_shards_shown(ngx_omnibus_sh_t *sh)
{
    if (sh->fence == NGX_OMNIBUS_FENCE_REMOVE) {
        return sh->fence_shard + 1;
    }

    return sh->nshards;
}


void
ngx_omnibus_zone_nomem(ngx_omnibus_zone_t *zone, ngx_log_t *log)
{
    ngx_omnibus_sh_t  *sh;

    sh = zone->sh;

    /* a full zone is a state, not news */
    if (ngx_time() - sh->nomem_logged < NGX_OMNIBUS_LOG_THROTTLE) {
        return;
    }

    sh->nomem_logged = ngx_time();

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "omnibus zone \"%V\" is full: publishes get 503 zone_full "
                  "until it drains or the zone grows", &zone->name);
}


/*
 * Singleton work: NGX_OK when this worker holds the cluster's lock,
 * NGX_DECLINED when another does, NGX_DONE when there is no lock to ask
 * (no cluster backend, or it is down): the work guards itself.
 */

ngx_int_t
ngx_omnibus_cluster_leads(ngx_omnibus_zone_t *zone)
{
    ngx_pid_t  leader;

    if (zone->cluster == NULL || !zone->sh->cluster.lock_known) {
        return NGX_DONE;
    }

    leader = zone->sh->cluster.leader;

    return (leader == ngx_pid) ? NGX_OK : NGX_DECLINED;
}


/* 1 while a worker's command connection to the cluster is up */

ngx_uint_t
ngx_omnibus_cluster_up(ngx_omnibus_sh_t *sh)
{
    ngx_uint_t  w;

    for (w = 0; w < ngx_min(ngx_omnibus_workers, NGX_OMNIBUS_HOLD_SLOTS); w++)
    {
        if (sh->cluster.procs[w].up & 1) {
            return 1;
        }
    }

    return 0;
}
