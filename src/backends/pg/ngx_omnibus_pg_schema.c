
/*
 * The store's schema, version 1, and the statements every connection
 * prepares.  Every table has "node" first in its primary key: it is the
 * distribution column under Citus (a node's rows together, every query
 * of a node on one shard), and plain PostgreSQL runs the same SQL.
 * Generations are list partitions of "slot", truncated in turn.
 */


#include <ngx_omnibus_pg_store.h>


static const char  ngx_omnibus_pg_migrate[] =
"DO $omnibus$\n"
"DECLARE\n"
"    s integer;\n"
"BEGIN\n"
"    CREATE TABLE IF NOT EXISTS omnibus_schema (\n"
"        version integer PRIMARY KEY,\n"
"        applied timestamptz NOT NULL DEFAULT now());\n"
"    IF EXISTS (SELECT 1 FROM omnibus_schema WHERE version >= 1) THEN\n"
"        RETURN;\n"
"    END IF;\n"
"    CREATE TABLE omnibus_generation (\n"
"        one boolean PRIMARY KEY DEFAULT true CHECK (one),\n"
"        gen bigint NOT NULL,\n"
"        slot integer NOT NULL,\n"
"        rotated timestamptz NOT NULL DEFAULT now());\n"
"    INSERT INTO omnibus_generation (gen, slot) VALUES (0, 0);\n"
"    CREATE TABLE omnibus_nodes (\n"
"        node text PRIMARY KEY,\n"
"        seen timestamptz NOT NULL);\n"
"    CREATE TABLE omnibus_messages (\n"
"        slot integer NOT NULL,\n"
"        node text NOT NULL,\n"
"        zone text NOT NULL,\n"
"        id text COLLATE \"C\" NOT NULL,\n"
"        topic text NOT NULL,\n"
"        priority smallint NOT NULL,\n"
"        ctype bytea NOT NULL,\n"
"        ikey bytea NOT NULL,\n"
"        payload bytea NOT NULL,\n"
"        json boolean NOT NULL,\n"
"        born bigint NOT NULL,\n"
"        PRIMARY KEY (node, id, slot)) PARTITION BY LIST (slot);\n"
"    CREATE TABLE omnibus_done (\n"
"        slot integer NOT NULL,\n"
"        node text NOT NULL,\n"
"        id text COLLATE \"C\" NOT NULL,\n"
"        PRIMARY KEY (node, id, slot)) PARTITION BY LIST (slot);\n"
"    FOR s IN 0..3 LOOP\n"
"        EXECUTE format('CREATE TABLE omnibus_messages_%s PARTITION OF '\n"
"                       'omnibus_messages FOR VALUES IN (%s)', s, s);\n"
"        EXECUTE format('CREATE TABLE omnibus_done_%s PARTITION OF '\n"
"                       'omnibus_done FOR VALUES IN (%s)', s, s);\n"
"    END LOOP;\n"
"    CREATE TABLE omnibus_dlq (\n"
"        node text NOT NULL,\n"
"        zone text NOT NULL,\n"
"        id text COLLATE \"C\" NOT NULL,\n"
"        route text NOT NULL,\n"
"        topic text NOT NULL,\n"
"        priority smallint NOT NULL,\n"
"        ctype bytea NOT NULL,\n"
"        ikey bytea NOT NULL,\n"
"        payload bytea NOT NULL,\n"
"        json boolean NOT NULL,\n"
"        attempts integer NOT NULL,\n"
"        error text NOT NULL,\n"
"        failed bigint NOT NULL,\n"
"        PRIMARY KEY (node, zone, id, route));\n"
"    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN\n"
"        PERFORM create_reference_table('omnibus_generation');\n"
"        PERFORM create_distributed_table('omnibus_nodes', 'node');\n"
"        PERFORM create_distributed_table('omnibus_messages', 'node',\n"
"                                         colocate_with => 'omnibus_nodes');\n"
"        PERFORM create_distributed_table('omnibus_done', 'node',\n"
"                                         colocate_with => 'omnibus_nodes');\n"
"        PERFORM create_distributed_table('omnibus_dlq', 'node',\n"
"                                         colocate_with => 'omnibus_nodes');\n"
"    END IF;\n"
"    INSERT INTO omnibus_schema (version) VALUES (1);\n"
"END\n"
"$omnibus$";


/*
 * The next generation's slot is truncated when its turn comes (tried
 * once per 1.5 s, by whichever node comes first).  A few
 * messages still unfinished there (a paused shard, a node nobody adopts)
 * are copied to the current slot first rather than hold every later
 * generation; a large backlog holds the rotation instead, as copying it
 * at every turn would cost more than keeping it.  Done marks there for
 * messages of other slots (a write-behind row can land after its done
 * mark) move to the current slot too.
 */

static const char  ngx_omnibus_pg_rotate_fn[] =
"CREATE OR REPLACE FUNCTION omnibus_rotate() RETURNS bigint\n"
"LANGUAGE plpgsql AS $omnibus$\n"
"DECLARE\n"
"    g bigint;\n"
"    cur integer;\n"
"    nxt integer;\n"
"BEGIN\n"
"    IF NOT pg_try_advisory_xact_lock(" NGX_OMNIBUS_PG_LOCK " + 1) THEN\n"
"        RETURN NULL;\n"
"    END IF;\n"
"    SELECT gen, slot INTO g, cur FROM omnibus_generation WHERE one\n"
"        AND rotated < now() - interval '1.5 seconds';\n"
"    IF NOT FOUND THEN\n"
"        RETURN NULL;\n"
"    END IF;\n"
"    UPDATE omnibus_generation SET rotated = now() WHERE one;\n"
"    nxt := ((g + 1) % 4)::integer;\n"
"    SET LOCAL lock_timeout = '1s';\n"
"    BEGIN\n"
"        EXECUTE format('LOCK TABLE omnibus_messages_%s, omnibus_done_%s '\n"
"                       'IN ACCESS EXCLUSIVE MODE', nxt, nxt);\n"
"    EXCEPTION WHEN lock_not_available THEN\n"
"        RETURN g;\n"
"    END;\n"
"    CREATE TEMP TABLE IF NOT EXISTS omnibus_left (LIKE omnibus_messages)\n"
"        ON COMMIT DELETE ROWS;\n"
"    INSERT INTO omnibus_left\n"
"        SELECT m.* FROM omnibus_messages m WHERE m.slot = nxt\n"
"        AND NOT EXISTS (SELECT 1 FROM omnibus_done d\n"
"                        WHERE d.node = m.node AND d.id = m.id)\n"
"        LIMIT 1001;\n"
"    IF (SELECT count(*) FROM omnibus_left) > 1000 THEN\n"
"        RETURN g;\n"
"    END IF;\n"
"    INSERT INTO omnibus_messages SELECT cur, l.node, l.zone, l.id,\n"
"        l.topic, l.priority, l.ctype, l.ikey, l.payload, l.json, l.born\n"
"        FROM omnibus_left l ON CONFLICT DO NOTHING;\n"
"    INSERT INTO omnibus_done (slot, node, id)\n"
"        SELECT cur, d.node, d.id FROM omnibus_done d\n"
"        WHERE d.slot = nxt AND EXISTS (\n"
"            SELECT 1 FROM omnibus_messages m\n"
"            WHERE m.node = d.node AND m.id = d.id AND m.slot <> nxt)\n"
"        ON CONFLICT DO NOTHING;\n"
"    EXECUTE format('TRUNCATE omnibus_messages_%s, omnibus_done_%s',\n"
"                   nxt, nxt);\n"
"    UPDATE omnibus_generation SET gen = g + 1, slot = nxt WHERE one;\n"
"    RETURN g + 1;\n"
"END\n"
"$omnibus$";


/*
 * Rows of a node silent for after_s seconds (an HPA scale-down, a pod
 * that never came back), in the caller's zone (a node with rows only in
 * zones nobody serves holds up no other), become the caller's, lim at a
 * time in id order:
 * copied under its name, marked done under the old one, returned to be
 * queued.  FOR UPDATE SKIP LOCKED: exactly one live node adopts a node.
 * With nothing left, its dead letters follow and its name goes.
 */

static const char  ngx_omnibus_pg_adopt_fn[] =
"CREATE OR REPLACE FUNCTION omnibus_adopt(me text, z text, after_s integer,\n"
"                                         lim integer)\n"
"RETURNS TABLE (id text, topic text, priority smallint, ctype bytea,\n"
"               ikey bytea, payload bytea, json boolean)\n"
"LANGUAGE plpgsql AS $omnibus$\n"
"#variable_conflict use_column\n"
"DECLARE\n"
"    gone text;\n"
"    cur integer;\n"
"BEGIN\n"
"    SELECT n.node INTO gone FROM omnibus_nodes n\n"
"        WHERE n.node <> me\n"
"          AND n.seen < now() - make_interval(secs => after_s)\n"
"          AND (EXISTS (SELECT 1 FROM omnibus_messages m\n"
"                       WHERE m.node = n.node AND m.zone = z)\n"
"               OR EXISTS (SELECT 1 FROM omnibus_dlq q\n"
"                          WHERE q.node = n.node AND q.zone = z)\n"
"               OR NOT EXISTS (SELECT 1 FROM omnibus_messages m\n"
"                              WHERE m.node = n.node))\n"
"        ORDER BY n.seen LIMIT 1 FOR UPDATE SKIP LOCKED;\n"
"    IF gone IS NULL THEN\n"
"        RETURN;\n"
"    END IF;\n"
"    SELECT g.slot INTO cur FROM omnibus_generation g WHERE g.one;\n"
"    RETURN QUERY\n"
"    WITH moved AS (\n"
"        SELECT m.* FROM omnibus_messages m\n"
"        WHERE m.node = gone AND m.zone = z\n"
"          AND NOT EXISTS (SELECT 1 FROM omnibus_done d\n"
"                          WHERE d.node = m.node AND d.id = m.id)\n"
"        ORDER BY m.id LIMIT lim),\n"
"    mine AS (\n"
"        INSERT INTO omnibus_messages (slot, node, zone, id, topic,\n"
"            priority, ctype, ikey, payload, json, born)\n"
"        SELECT cur, me, v.zone, v.id, v.topic, v.priority, v.ctype,\n"
"            v.ikey, v.payload, v.json, v.born FROM moved v\n"
"        ON CONFLICT DO NOTHING),\n"
"    finished AS (\n"
"        INSERT INTO omnibus_done (slot, node, id)\n"
"        SELECT cur, gone, v.id FROM moved v ON CONFLICT DO NOTHING)\n"
"    SELECT v.id, v.topic, v.priority, v.ctype, v.ikey, v.payload, v.json\n"
"    FROM moved v ORDER BY v.id;\n"
"    IF FOUND THEN\n"
"        RETURN;\n"
"    END IF;\n"
"    INSERT INTO omnibus_dlq (node, zone, id, route, topic, priority,\n"
"        ctype, ikey, payload, json, attempts, error, failed)\n"
"    SELECT me, q.zone, q.id, q.route, q.topic, q.priority, q.ctype,\n"
"        q.ikey, q.payload, q.json, q.attempts, q.error, q.failed\n"
"    FROM omnibus_dlq q WHERE q.node = gone AND q.zone = z\n"
"    ON CONFLICT DO NOTHING;\n"
"    DELETE FROM omnibus_dlq q WHERE q.node = gone AND q.zone = z;\n"
"    IF NOT EXISTS (SELECT 1 FROM omnibus_messages m\n"
"                   WHERE m.node = gone AND NOT EXISTS (\n"
"                       SELECT 1 FROM omnibus_done d\n"
"                       WHERE d.node = m.node AND d.id = m.id))\n"
"       AND NOT EXISTS (SELECT 1 FROM omnibus_dlq q WHERE q.node = gone)\n"
"    THEN\n"
"        DELETE FROM omnibus_nodes n WHERE n.node = gone;\n"
"    END IF;\n"
"END\n"
"$omnibus$";


/* prepared on every connection, re-prepared after a reconnect */

typedef struct {
    const char                 *name;
    const char                 *sql;
    int                         n;
    Oid                         types[13];
} ngx_omnibus_pg_stmt_t;

#define T   25      /* text */
#define I2  21
#define I4  23
#define I8  20
#define B   17      /* bytea */
#define BO  16      /* boolean */
#define TA  1009    /* arrays of them, sent binary */
#define I2A 1005
#define I8A 1016
#define BA  1001
#define BOA 1000

static ngx_omnibus_pg_stmt_t  ngx_omnibus_pg_stmts[] = {

    /* a batch's messages and its done marks, in one statement */

    { "omnibus_write",
      "WITH m AS (INSERT INTO omnibus_messages (slot, node, zone, id, topic, "
      "priority, ctype, ikey, payload, json, born) SELECT g.slot, $1, $2, "
      "m.* FROM omnibus_generation g, "
      "unnest($3, $4, $5, $6, $7, $8, $9, $10) m WHERE g.one "
      "ON CONFLICT DO NOTHING) "
      "INSERT INTO omnibus_done (slot, node, id) SELECT g.slot, $1, d "
      "FROM omnibus_generation g, unnest($11) d WHERE g.one "
      "ON CONFLICT DO NOTHING",
      11, { T, T, TA, TA, I2A, BA, BA, BA, BOA, I8A, TA } },

    { "omnibus_dead",
      "INSERT INTO omnibus_dlq (node, zone, id, route, topic, priority, "
      "ctype, ikey, payload, json, attempts, error, failed) VALUES ($1, $2, "
      "$3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) "
      "ON CONFLICT DO NOTHING",
      13, { T, T, T, T, T, I2, B, B, B, BO, I4, T, I8 } },

    { "omnibus_purge",
      "DELETE FROM omnibus_dlq WHERE node = $1 AND zone = $2",
      2, { T, T } },

    /* a dead letter queued again: not dead, and not done any more */
    { "omnibus_replayed",
      "WITH dead AS (DELETE FROM omnibus_dlq WHERE node = $1 AND zone = $2 "
      "AND id = $3) DELETE FROM omnibus_done WHERE node = $1 AND id = $3",
      3, { T, T, T } },

    { "omnibus_load",
      "SELECT id, topic, priority, ctype, ikey, payload, json "
      "FROM omnibus_messages m WHERE node = $1 AND zone = $2 AND id > $3 "
      "AND NOT EXISTS (SELECT 1 FROM omnibus_done d "
      "WHERE d.node = m.node AND d.id = m.id) ORDER BY id LIMIT $4",
      4, { T, T, T, I4 } },

    { "omnibus_load_dlq",
      "SELECT * FROM (SELECT id, topic, priority, ctype, ikey, payload, "
      "json, route, attempts, error, failed FROM omnibus_dlq "
      "WHERE node = $1 AND zone = $2 ORDER BY failed DESC, id LIMIT $3) "
      "newest ORDER BY failed, id",
      3, { T, T, I4 } },

    { "omnibus_beat",
      "INSERT INTO omnibus_nodes (node, seen) VALUES ($1, now()) "
      "ON CONFLICT (node) DO UPDATE SET seen = now()",
      1, { T } },

    { "omnibus_rotate",
      "SELECT omnibus_rotate()",
      0, { 0 } },

    { "omnibus_adopt",
      "SELECT * FROM omnibus_adopt($1, $2, $3, $4)",
      4, { T, T, I4, I4 } },

    { "omnibus_expire",
      "DELETE FROM omnibus_dlq WHERE node = $1 AND zone = $2 "
      "AND failed < $3",
      3, { T, T, I8 } },
};

#undef T
#undef I2
#undef I4
#undef I8
#undef B
#undef BO
#undef TA
#undef I2A
#undef I8A
#undef BA
#undef BOA


/*
 * A new connection's setup, one transaction: the schema (under an
 * advisory lock, so one node migrates and the others find it done), the
 * functions, then every statement prepared.  Returns how many were sent.
 */

ngx_int_t
ngx_omnibus_pg_schema_send(PGconn *pg, ngx_uint_t migrate)
{
    ngx_int_t               n;
    ngx_uint_t              i;
    ngx_omnibus_pg_stmt_t  *s;

    n = 0;

    if (migrate) {
        if (!PQsendQueryParams(pg, "SELECT pg_advisory_xact_lock("
                               NGX_OMNIBUS_PG_LOCK ")",
                               0, NULL, NULL, NULL, NULL, 0)
            || !PQsendQueryParams(pg, ngx_omnibus_pg_migrate,
                                  0, NULL, NULL, NULL, NULL, 0)
            || !PQsendQueryParams(pg, ngx_omnibus_pg_rotate_fn,
                                  0, NULL, NULL, NULL, NULL, 0)
            || !PQsendQueryParams(pg, ngx_omnibus_pg_adopt_fn,
                                  0, NULL, NULL, NULL, NULL, 0))
        {
            return NGX_ERROR;
        }

        n += 4;
    }

    for (i = 0; i < sizeof(ngx_omnibus_pg_stmts)
                    / sizeof(ngx_omnibus_pg_stmt_t); i++)
    {
        s = &ngx_omnibus_pg_stmts[i];

        if (!PQsendPrepare(pg, s->name, s->sql, s->n, s->types)) {
            return NGX_ERROR;
        }

        n++;
    }

    return n;
}
