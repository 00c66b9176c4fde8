import { readFileSync } from 'node:fs';

/**
 * How a worker or client reaches Temporal, from the environment (DESIGN §7):
 * TEMPORAL_ADDRESS (host:port), TEMPORAL_NAMESPACE (default `default`), and for TLS / Temporal Cloud
 * TEMPORAL_TLS_CERT + TEMPORAL_TLS_KEY (client certificate files), TEMPORAL_TLS_CA (server CA file),
 * TEMPORAL_TLS=1 (TLS with system roots), TEMPORAL_API_KEY.
 */
export interface TemporalTarget {
  address: string;
  namespace: string;
  tls?: { clientCertPair?: { crt: Buffer; key: Buffer }; serverRootCACertificate?: Buffer } | true;
  apiKey?: string;
}

export function temporalTargetFromEnv(overrides: Partial<TemporalTarget> = {}): TemporalTarget {
  const address = overrides.address ?? process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const namespace = overrides.namespace ?? process.env.TEMPORAL_NAMESPACE ?? 'default';
  const cert = process.env.TEMPORAL_TLS_CERT;
  const key = process.env.TEMPORAL_TLS_KEY;
  const ca = process.env.TEMPORAL_TLS_CA;
  if ((cert && !key) || (key && !cert)) throw new Error('set both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY (client certificate and key files), or neither');
  let tls: TemporalTarget['tls'];
  const read = (name: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new Error(`${name}=${file}: cannot read the file (${(error as Error).message})`);
    }
  };
  if (cert && key) {
    tls = { clientCertPair: { crt: read('TEMPORAL_TLS_CERT', cert), key: read('TEMPORAL_TLS_KEY', key) } };
    if (ca) tls.serverRootCACertificate = read('TEMPORAL_TLS_CA', ca);
  } else if (ca) tls = { serverRootCACertificate: read('TEMPORAL_TLS_CA', ca) };
  else if (process.env.TEMPORAL_TLS === '1' || process.env.TEMPORAL_API_KEY) tls = true;
  return { address, namespace, tls: overrides.tls ?? tls, apiKey: overrides.apiKey ?? process.env.TEMPORAL_API_KEY };
}

/** Options for `Connection.connect` / `NativeConnection.connect`. */
export function connectionOptions(target: TemporalTarget) {
  return {
    address: target.address,
    ...(target.tls ? { tls: target.tls === true ? true : target.tls } : {}),
    ...(target.apiKey ? { apiKey: target.apiKey } : {}),
  };
}
