import type { PGlite } from '@electric-sql/pglite';
import type { PGLiteSocketServer } from '@electric-sql/pglite-socket';

/**
 * PGlite has one session, shared by every client of @electric-sql/pglite-socket. The socket server's query
 * queue (0.2.17) forwards one wire-protocol *message* at a time and keeps other clients out only while a
 * transaction is open. Outside a transaction, one client's extended-protocol batch (Parse, Bind, Describe,
 * Execute … Sync) can interleave with another's: the second client's Parse replaces the unnamed statement the
 * first one is about to Bind, and after an error the session skips every message up to the next Sync, whoever
 * sent it ("prepared statement … does not exist" in postgres.js). It also stops for good after a failed message.
 *
 * This queue replaces it: a client keeps the session from its first extended-protocol message until its Sync
 * (and, as before, for the whole of a transaction it opened), and a failed message does not stall the queue.
 */

interface QueuedMessage {
  handlerId: number;
  message: Uint8Array;
  resolve: (bytes: number) => void;
  reject: (error: unknown) => void;
  onData: (data: Uint8Array) => void;
}

/** Frontend messages that end an extended-protocol batch or are complete on their own. */
const SYNC = 0x53; // 'S'
const QUERY = 0x51; // 'Q'
const TERMINATE = 0x58; // 'X'
/** Extended-protocol messages that open or continue a batch (Parse, Bind, Describe, Execute, Close, Flush). */
const BATCH = new Set([0x50, 0x42, 0x44, 0x45, 0x43, 0x48]);

export class BatchAwareQueryQueue {
  private queue: QueuedMessage[] = [];
  private processing = false;
  private owner: number | null = null;
  private midBatch = new Set<number>();

  constructor(private readonly db: PGlite) {}

  enqueue(handlerId: number, message: Uint8Array, onData: (data: Uint8Array) => void): Promise<number> {
    return new Promise((resolve, reject) => {
      this.queue.push({ handlerId, message, resolve, reject, onData });
      void this.processQueue();
    });
  }

  getQueueLength(): number {
    return this.queue.length;
  }

  clearQueueForHandler(handlerId: number): void {
    this.queue = this.queue.filter((item) => {
      if (item.handlerId !== handlerId) return true;
      item.reject(new Error('Handler disconnected'));
      return false;
    });
  }

  /** Called when a client disconnects: end what it left open so the others can go on. */
  async clearTransactionIfNeeded(handlerId: number): Promise<void> {
    this.midBatch.delete(handlerId);
    if (this.owner !== handlerId) return;
    this.owner = null;
    if (this.db.isInTransaction()) await this.db.exec('ROLLBACK');
    await this.processQueue();
  }

  private pinned(): boolean {
    return this.owner !== null && (this.midBatch.has(this.owner) || this.db.isInTransaction());
  }

  private async processQueue(): Promise<void> {
    if (this.processing) return;
    this.processing = true;
    try {
      while (this.queue.length > 0) {
        let index = 0;
        if (this.pinned()) {
          index = this.queue.findIndex((item) => item.handlerId === this.owner);
          if (index === -1) break; // the owner's next message will restart the queue
        }
        const [item] = this.queue.splice(index, 1);
        const type = item.message[0];
        let bytes = 0;
        try {
          await this.db.runExclusive(() =>
            this.db.execProtocolRawStream(item.message, {
              onRawData: (data) => {
                bytes += data.length;
                item.onData(data);
              },
            }),
          );
        } catch (error) {
          item.reject(error);
          continue;
        } finally {
          this.owner = item.handlerId;
          if (BATCH.has(type)) this.midBatch.add(item.handlerId);
          else if (type === SYNC || type === QUERY || type === TERMINATE) this.midBatch.delete(item.handlerId);
        }
        item.resolve(bytes);
      }
    } finally {
      this.processing = false;
    }
  }
}

/** Swap the server's queue before it accepts connections (each connection's handler takes the queue then). */
export function installBatchAwareQueue(server: PGLiteSocketServer, db: PGlite): void {
  const internal = server as unknown as { queryQueue?: { enqueue?: unknown } };
  if (typeof internal.queryQueue?.enqueue !== 'function') {
    throw new Error(
      'unexpected @electric-sql/pglite-socket internals (no queryQueue): db/socket-queue.ts was written for 0.2.17',
    );
  }
  (internal as { queryQueue: unknown }).queryQueue = new BatchAwareQueryQueue(db);
}
