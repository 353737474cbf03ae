-- The PostgreSQL schema mirrors the SQLite one as its migrations leave it: the same tables,
-- columns and names (TEXT ids, BIGINT seconds and counts, BOOLEAN flags), so both backends
-- read rows with the same code. Text is compared byte by byte (COLLATE "C"), as SQLite
-- compares it, whatever the database's locale: ids and names sort the same on both.

-- Organizations, projects, API keys with roles and access lists, clusters, server secrets.

CREATE TABLE orgs (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT COLLATE "C" NOT NULL,
    created     BIGINT NOT NULL
);

CREATE TABLE projects (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs(id),
    name        TEXT COLLATE "C" NOT NULL,
    created     BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    org_id      TEXT COLLATE "C" NOT NULL REFERENCES orgs(id),
    public_key  TEXT COLLATE "C" NOT NULL UNIQUE,
    description TEXT COLLATE "C" NOT NULL,
    digest_ha1  TEXT COLLATE "C" NOT NULL,
    created     BIGINT NOT NULL
);

-- A key's roles read back in the order they were granted: SQLite keeps that order in its
-- rowid, PostgreSQL in `position`.
CREATE TABLE api_key_roles (
    position    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id      TEXT COLLATE "C" NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    project_id  TEXT COLLATE "C" REFERENCES projects(id) ON DELETE CASCADE,
    role_name   TEXT COLLATE "C" NOT NULL
);
CREATE INDEX api_key_roles_key ON api_key_roles(key_id);

CREATE TABLE api_key_access (
    key_id      TEXT COLLATE "C" NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    cidr        TEXT COLLATE "C" NOT NULL,
    created     BIGINT NOT NULL,
    PRIMARY KEY (key_id, cidr)
);

CREATE TABLE clusters (
    id               TEXT COLLATE "C" PRIMARY KEY,
    project_id       TEXT COLLATE "C" NOT NULL REFERENCES projects(id),
    cluster_name     TEXT COLLATE "C" NOT NULL,
    type_name        TEXT COLLATE "C" NOT NULL,
    replica_set_name TEXT COLLATE "C",
    shard_name       TEXT COLLATE "C",
    parent_id        TEXT COLLATE "C" REFERENCES clusters(id),
    fcv              TEXT COLLATE "C" NOT NULL,
    last_heartbeat   BIGINT,
    created          BIGINT NOT NULL
);
CREATE UNIQUE INDEX clusters_top_level_name ON clusters(project_id, cluster_name) WHERE parent_id IS NULL;
CREATE INDEX clusters_project ON clusters(project_id, id);

CREATE TABLE server_secrets (
    name        TEXT COLLATE "C" PRIMARY KEY,
    value_hex   TEXT COLLATE "C" NOT NULL
);

-- Per-project backup settings; a project without a row, or a setting left NULL, has the
-- default.
CREATE TABLE backup_settings (
    project_id                  TEXT COLLATE "C" PRIMARY KEY REFERENCES projects(id),
    point_in_time_window_hours  BIGINT,
    checkpoint_interval_minutes BIGINT
);
