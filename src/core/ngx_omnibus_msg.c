
/*
 * Messages in the zone: their ids, reading their payload back, and
 * freeing them with the last reference.
 */


#include <ngx_omnibus_core.h>


/*
 * The sequence field holds a shard's sequence modulo 2^40: the queue
 * moves the zone's instance on when a shard's sequence wraps (see
 * ngx_omnibus_enqueue()), so that ids stay unique and increasing.
 */

void
ngx_omnibus_msg_id(u_char *id, uint64_t instance, uint32_t rand,
    ngx_uint_t shard, uint64_t seq)
{
    ngx_sprintf(id, "%012xL%08xD-%04xD-%010xL",
                instance & 0xffffffffffffULL, rand, (uint32_t) shard & 0xffff,
                seq % NGX_OMNIBUS_ID_SEQ_SPAN);
}


ngx_int_t
ngx_omnibus_msg_id_parse(ngx_str_t *id, ngx_uint_t *shard, uint64_t *seq)
{
    ngx_int_t   s;
    uint64_t    q;
    u_char     *p;

    if (id->len != NGX_OMNIBUS_ID_LEN
        || id->data[NGX_OMNIBUS_ID_SHARD - 1] != '-'
        || id->data[NGX_OMNIBUS_ID_SEQ - 1] != '-')
    {
        return NGX_ERROR;
    }

    s = ngx_hextoi(id->data + NGX_OMNIBUS_ID_SHARD, NGX_OMNIBUS_ID_SHARD_LEN);
    if (s == NGX_ERROR) {
        return NGX_ERROR;
    }

    /* ngx_hextoi() takes upper case too; ids are lower case only */

    q = 0;

    for (p = id->data + NGX_OMNIBUS_ID_SEQ;
         p < id->data + NGX_OMNIBUS_ID_LEN;
         p++)
    {
        if (*p >= '0' && *p <= '9') {
            q = q * 16 + (*p - '0');

        } else if (*p >= 'a' && *p <= 'f') {
            q = q * 16 + (*p - 'a' + 10);

        } else {
            return NGX_ERROR;
        }
    }

    *shard = s;
    *seq = q;

    return NGX_OK;
}


void
ngx_omnibus_msg_free_locked(ngx_slab_pool_t *shpool, ngx_omnibus_msg_t *msg)
{
    ngx_omnibus_seg_t  *seg, *next;

    for (seg = msg->more; seg; seg = next) {
        next = seg->next;
        ngx_slab_free_locked(shpool, seg);
    }

    ngx_slab_free_locked(shpool, msg);
}


void
ngx_omnibus_msg_unref_locked(ngx_slab_pool_t *shpool, ngx_omnibus_msg_t *msg)
{
    if (--msg->refs == 0) {
        ngx_omnibus_msg_free_locked(shpool, msg);
    }
}


u_char *
ngx_omnibus_msg_copy_payload(u_char *dst, ngx_omnibus_msg_t *msg)
{
    ngx_omnibus_seg_t  *seg;

    dst = ngx_cpymem(dst, ngx_omnibus_msg_head(msg), msg->head_len);

    for (seg = msg->more; seg; seg = seg->next) {
        dst = ngx_cpymem(dst, seg->data, seg->len);
    }

    return dst;
}
