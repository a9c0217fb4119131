/**
 * Asks a notebook's kernel which experiment its tracked cells write to (jupyter_tracking/kernel_target.py),
 * with a silent user expression that only runs where jupyter_tracking is already imported.
 */

import { Kernel, KernelMessage } from '@jupyterlab/services';

/** The kernel's answer: the experiment it writes to (its id once a run was made there) and its store. */
export interface IKernelTarget {
  experiment: string;
  experiment_id: string | null;
  store: string;
  last_run_id: string | null;
}

export const TARGET_EXPRESSION =
  "__import__('jupyter_tracking.kernel_target', fromlist=['target']).target() " +
  "if 'jupyter_tracking' in __import__('sys').modules else None";

/** The target from a user expression's answer, or null (not loaded, an error, anything unexpected). */
export function parseTarget(answer: unknown): IKernelTarget | null {
  const result = answer as { status?: string; data?: Record<string, unknown> } | undefined;
  if (!result || result.status !== 'ok' || !result.data) {
    return null;
  }
  const json = result.data['application/json'] as Record<string, unknown> | undefined;
  if (!json || typeof json !== 'object' || typeof json.experiment !== 'string') {
    return null;
  }
  const text = (v: unknown) => (typeof v === 'string' && v ? v : null);
  return {
    experiment: json.experiment,
    experiment_id: text(json.experiment_id),
    store: typeof json.store === 'string' ? json.store : '',
    last_run_id: text(json.last_run_id)
  };
}

/** Ask `kernel` (null when it does not answer within `timeoutMs`, e.g. while it runs a long cell). */
export async function askKernel(kernel: Kernel.IKernelConnection | null | undefined, timeoutMs = 4000): Promise<IKernelTarget | null> {
  if (!kernel) {
    return null;
  }
  const future = kernel.requestExecute(
    { code: '', silent: true, store_history: false, allow_stdin: false, user_expressions: { jt: TARGET_EXPRESSION } },
    true
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>(resolve => {
    timer = setTimeout(() => resolve(null), timeoutMs);
  });
  try {
    const reply = await Promise.race([future.done, timeout]);
    if (!reply) {
      return null;
    }
    const content = (reply as KernelMessage.IExecuteReplyMsg).content;
    return content.status === 'ok' ? parseTarget((content as KernelMessage.IExecuteReplyMsg['content'] & { user_expressions?: Record<string, unknown> }).user_expressions?.jt) : null;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}
