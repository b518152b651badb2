
/*
 * Message ids: ngx_omnibus_msg_id_parse() on any input (a Last-Event-ID
 * header or ?after=), and its round trip with ngx_omnibus_msg_id().
 *
 * Properties: a parsed id is 36 bytes whose shard and sequence fields
 * are what ngx_omnibus_msg_id() writes for the values parsed, up to the
 * case of the shard's hex digits; an id made of values within the id's
 * fields (instance < 2^48, shard < 2^16, seq < 2^40) parses back to its
 * shard and sequence; any values make exactly 36 bytes (a sequence past
 * 2^40 is written modulo 2^40, and nothing past the id is touched).
 */


#include "fuzz_common.h"
#include <ngx_omnibus_core.h>


static uint64_t
fuzz_bytes(const uint8_t **p, const uint8_t *last, size_t n)
{
    uint64_t  v;

    v = 0;

    while (n--) {
        v = (v << 8) | (*p < last ? *(*p)++ : 0);
    }

    return v;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char         *id, *made;
    uint32_t        rnd;
    uint64_t        seq, instance, s;
    ngx_str_t       str;
    ngx_uint_t      i, shard, sh;
    const uint8_t  *p;
    u_char          again[NGX_OMNIBUS_ID_LEN];

    fuzz_init();

    /* any input, as a client sends it */

    id = fuzz_dup(data, size, 0);
    str.data = id;
    str.len = size;

    if (ngx_omnibus_msg_id_parse(&str, &shard, &seq) == NGX_OK) {
        fuzz_assert(size == NGX_OMNIBUS_ID_LEN);
        fuzz_assert(shard <= 0xffff && seq < (1ULL << 40));

        ngx_omnibus_msg_id(again, 0, 0, shard, seq);

        for (i = NGX_OMNIBUS_ID_SHARD - 1; i < NGX_OMNIBUS_ID_LEN; i++) {
            fuzz_assert(ngx_tolower(id[i]) == again[i]);
        }

        for (i = NGX_OMNIBUS_ID_SEQ; i < NGX_OMNIBUS_ID_LEN; i++) {
            fuzz_assert(id[i] == again[i]);
        }
    }

    free(id);

    /* the round trip, from values taken from the input */

    p = data;

    instance = fuzz_bytes(&p, data + size, 6);
    rnd = (uint32_t) fuzz_bytes(&p, data + size, 4);
    sh = (ngx_uint_t) fuzz_bytes(&p, data + size, 2);
    s = fuzz_bytes(&p, data + size, 8);

    /* exactly an id's size, so that AddressSanitizer sees any overrun */
    made = malloc(NGX_OMNIBUS_ID_LEN);
    if (made == NULL) {
        abort();
    }

    ngx_omnibus_msg_id(made, instance, rnd, sh, s);

    str.data = made;
    str.len = NGX_OMNIBUS_ID_LEN;

    fuzz_assert(ngx_omnibus_msg_id_parse(&str, &shard, &seq) == NGX_OK);
    fuzz_assert(shard == sh && seq == s % (1ULL << 40));

    for (i = 0; i < NGX_OMNIBUS_ID_LEN; i++) {
        fuzz_assert((made[i] >= '0' && made[i] <= '9')
                    || (made[i] >= 'a' && made[i] <= 'f')
                    || ((i == NGX_OMNIBUS_ID_SHARD - 1
                         || i == NGX_OMNIBUS_ID_SEQ - 1)
                        && made[i] == '-'));
    }

    free(made);

    return 0;
}
