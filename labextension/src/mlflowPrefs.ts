/**
 * MLflow UI preferences set once for the tab's page (same origin as JupyterLab, through the proxy): its AI
 * assistant column does not open by itself over the runs. A choice the user made in the UI is kept.
 */

/** MLflow's own localStorage entries (its `useLocalStorage` hook stores `${key}_v${version}` as JSON). */
export const MLFLOW_UI_DEFAULTS: Record<string, string> = {
  'mlflow.assistant.fab.autoOpenedOnFirstLoad_v1': 'true',
  'mlflow.assistant.panelOpen_v1': 'false'
};

/** Write the defaults that are not set yet; returns the keys written. */
export function applyMlflowDefaults(storage: Pick<Storage, 'getItem' | 'setItem'>): string[] {
  const written: string[] = [];
  for (const [key, value] of Object.entries(MLFLOW_UI_DEFAULTS)) {
    try {
      if (storage.getItem(key) === null) {
        storage.setItem(key, value);
        written.push(key);
      }
    } catch {
      // Storage refused (private mode, quota): the UI works, its assistant may open.
    }
  }
  return written;
}
