#!/bin/sh
# Run once by the postgres image on first start (/docker-entrypoint-initdb.d), as the superuser POSTGRES_USER.
# mmsweep connects as `mmsweep`, an ordinary role owning its database: no superuser, so no server files, no
# programs, no other sessions. `mmsweep_readonly` is the role `mmsweep sql` switches to (db/migrations/0004_*);
# created here because the application role may not create roles; its grants come with mmsweep's migrations.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -v app_password="$MMSWEEP_DB_PASSWORD" <<'SQL'
CREATE ROLE mmsweep LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'app_password';
CREATE DATABASE mmsweep OWNER mmsweep;
CREATE ROLE mmsweep_readonly NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
GRANT mmsweep_readonly TO mmsweep;
SQL
