-- Foundation: organizations, projects, API keys with roles and access lists, clusters.
-- Kept to portable SQL (TEXT ids, BIGINT seconds) so the PostgreSQL migration mirrors it.

CREATE TABLE orgs (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created     BIGINT NOT NULL
);

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    name        TEXT NOT NULL,
    created     BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs(id),
    public_key  TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    digest_ha1  TEXT NOT NULL,
    created     BIGINT NOT NULL
);

CREATE TABLE api_key_roles (
    key_id      TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    project_id  TEXT REFERENCES projects(id) ON DELETE CASCADE,
    role_name   TEXT NOT NULL
);
CREATE INDEX api_key_roles_key ON api_key_roles(key_id);

CREATE TABLE api_key_access (
    key_id      TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    cidr        TEXT NOT NULL,
    created     BIGINT NOT NULL,
    PRIMARY KEY (key_id, cidr)
);

CREATE TABLE clusters (
    id               TEXT PRIMARY KEY,
    project_id       TEXT NOT NULL REFERENCES projects(id),
    cluster_name     TEXT NOT NULL,
    type_name        TEXT NOT NULL,
    replica_set_name TEXT,
    shard_name       TEXT,
    parent_id        TEXT REFERENCES clusters(id),
    fcv              TEXT NOT NULL,
    last_heartbeat   BIGINT,
    created          BIGINT NOT NULL
);
CREATE UNIQUE INDEX clusters_top_level_name ON clusters(project_id, cluster_name) WHERE parent_id IS NULL;
CREATE INDEX clusters_project ON clusters(project_id, id);

CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    value_hex   TEXT NOT NULL
);
