/** Starting a bench peer in a worker thread: the one place that waits for it to come up. */
import { Worker } from 'node:worker_threads';

/**
 * Starts `script` (a URL next to the caller) with `workerData` and resolves once it is online.
 * Rejects if it throws or exits first, and terminates it then, so a failed open leaves nothing behind.
 */
export async function startWorker(script: URL, workerData: unknown, what: string): Promise<Worker> {
  const worker = new Worker(script, { workerData });
  const failed = new Promise<never>((_, reject) => {
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`bench: ${what} worker exited with ${code}`)));
  });
  failed.catch(() => {});
  try {
    await Promise.race([new Promise((r) => worker.once('online', r)), failed]);
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  return worker;
}
