-- Runs once, when the postgres container initialises an empty data volume
-- (/docker-entrypoint-initdb.d, as the superuser, through psql 16).
--
-- Two login roles, one per system, neither a superuser:
--   fleet     owns the `fleet` database (the gateway's tables; `fleet migrate` creates them);
--   temporal  may create databases: the temporal-schema service creates `temporal` and
--             `temporal_visibility` with it, so it owns them and their schemas.
-- Passwords come from the container's environment (FLEET_DB_PASSWORD, TEMPORAL_DB_PASSWORD),
-- set by docker-compose.yml from the same variables the clients use.
--
-- Changing a password later does not re-run this file: ALTER ROLE ... PASSWORD by hand, or
-- remove the volume (`docker compose down -v`, which deletes all data).

\set ON_ERROR_STOP on

\getenv fleet_password FLEET_DB_PASSWORD
\getenv temporal_password TEMPORAL_DB_PASSWORD

\if :{?fleet_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'FLEET_DB_PASSWORD is not set in the postgres container'; END $$;
\endif
\if :{?temporal_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'TEMPORAL_DB_PASSWORD is not set in the postgres container'; END $$;
\endif

CREATE ROLE fleet LOGIN PASSWORD :'fleet_password';
CREATE DATABASE fleet OWNER fleet;

-- CREATEDB for `temporal-sql-tool create-database`. The visibility schema creates the
-- btree_gin extension, which is trusted (PostgreSQL 13+), so the database owner may.
CREATE ROLE temporal LOGIN CREATEDB PASSWORD :'temporal_password';
