import type { Command } from 'commander';

/**
 * `mmsweep db url | migrate | serve`: where the results store is and how to reach it with psql.
 * `db url` prints the URL alone on stdout (so `psql "$(mmsweep db url)"` works) and the context on stderr.
 */
export function register(program: Command): void {
  const db = program.command('db').description('The results store: connection URL, migrations, serving the embedded database');

  db.command('url')
    .description('Print the URL psql and other processes can connect to (DATABASE_URL, or the embedded database while an mmsweep process holds it)')
    .option('--show-password', 'print the password (of DATABASE_URL, or of the embedded database served on a TCP port) instead of ***')
    .action(async (opts: { showPassword?: boolean }) => {
      const { defaultDataDir, embeddedServerInfo, maskUrl } = await import('../../../db/client.ts');
      const url = process.env.DATABASE_URL;
      if (url) {
        process.stdout.write(`${opts.showPassword ? url : maskUrl(url)}\n`);
        process.stderr.write('(from DATABASE_URL)\n');
        return;
      }
      const dataDir = defaultDataDir();
      const info = embeddedServerInfo(dataDir);
      if (!info) {
        process.stderr.write(
          `mmsweep: no mmsweep process is serving the embedded database ${dataDir} right now. ` +
            'Run `mmsweep db serve` (serves until Ctrl-C), or set DATABASE_URL to use a Postgres server.\n',
        );
        process.exitCode = 1;
        return;
      }
      // A TCP port's URL carries the per-home password: masked like DATABASE_URL's unless asked for.
      const secret = new URL(info.url).password !== '';
      process.stdout.write(`${opts.showPassword ? info.url : maskUrl(info.url)}\n`);
      process.stderr.write(
        `(embedded database ${info.dataDir}, served by process ${info.pid}; connect with: psql "$(mmsweep db url${secret ? ' --show-password' : ''})")\n`,
      );
    });

  db.command('migrate')
    .description('Apply pending migrations (mmsweep also does this on start-up, under an advisory lock)')
    .action(async () => {
      const { withStore } = await import('../../../db/cli.ts');
      const { migrateDatabase } = await import('../../../db/client.ts');
      await withStore(async (handle) => {
        await migrateDatabase(handle);
        process.stdout.write(`migrations applied to ${handle.displayName}\n`);
      });
    });

  db.command('serve')
    .description('Hold the embedded database and serve it over the Postgres wire protocol until Ctrl-C')
    .option('--port <port>', 'serve on 127.0.0.1:<port> (0: any free port) with the per-home password, instead of the Unix socket (default: MMSWEEP_DB_PORT)')
    .action(async (opts: { port?: string }) => {
      const { openDatabase, DatabaseConnectionError } = await import('../../../db/client.ts');
      if (process.env.DATABASE_URL) {
        process.stderr.write('mmsweep: DATABASE_URL is set: the results store is that server, there is nothing to serve.\n');
        process.exitCode = 1;
        return;
      }
      const port = opts.port === undefined ? undefined : Number(opts.port);
      if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port < 65536)) {
        process.stderr.write(`mmsweep: --port must be an integer in 0…65535, got "${opts.port}"\n`);
        process.exitCode = 2;
        return;
      }
      let handle;
      try {
        handle = await openDatabase({ port });
      } catch (error) {
        if (!(error instanceof DatabaseConnectionError)) throw error;
        process.stderr.write(`mmsweep: ${error.message}\n`);
        process.exitCode = 1;
        return;
      }
      const connect = `psql "$(mmsweep db url${new URL(handle.url!).password ? ' --show-password' : ''})"`;
      if (!handle.owner) {
        process.stdout.write(`${handle.displayName}\n`);
        process.stderr.write(`(another mmsweep process already serves this database; connect with: ${connect})\n`);
        await handle.close();
        return;
      }
      process.stdout.write(`${handle.displayName}\n`);
      process.stderr.write(`serving ${handle.dataDir}; connect with: ${connect} — Ctrl-C to stop\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await handle.close();
    });
}
