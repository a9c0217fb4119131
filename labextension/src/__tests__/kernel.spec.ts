import { parseTarget, TARGET_EXPRESSION } from '../kernel';
import { applyMlflowDefaults } from '../mlflowPrefs';
import { startProgress } from '../progress';

describe('parseTarget', () => {
  it("reads the kernel's JSON answer", () => {
    const answer = {
      status: 'ok',
      data: { 'application/json': { experiment: 'iris', experiment_id: '4', store: 'sqlite:///x/mlflow.db', last_run_id: null } }
    };
    expect(parseTarget(answer)).toEqual({ experiment: 'iris', experiment_id: '4', store: 'sqlite:///x/mlflow.db', last_run_id: null });
  });
  it('is null when jupyter_tracking is not loaded or the expression failed', () => {
    expect(parseTarget({ status: 'ok', data: { 'text/plain': 'None' } })).toBeNull();
    expect(parseTarget({ status: 'error', ename: 'NameError' })).toBeNull();
    expect(parseTarget(undefined)).toBeNull();
    expect(parseTarget({ status: 'ok', data: { 'application/json': { experiment: 3 } } })).toBeNull();
  });
  it('never imports jupyter_tracking into a kernel that has not', () => {
    expect(TARGET_EXPRESSION).toContain("if 'jupyter_tracking' in __import__('sys').modules else None");
  });
});

describe('startProgress', () => {
  it('shows the stage and the elapsed time, and the time left once a start was measured', () => {
    expect(startProgress(null, 2400)).toEqual({ text: 'Starting the MLflow UI: starting · 2 s', fraction: null });
    const first = { state: 'starting' as const, elapsed: 3.2, stage: 'loading MLflow', expected: null };
    expect(startProgress(first, 0)).toEqual({ text: 'Starting the MLflow UI: loading MLflow · 3 s', fraction: null });
    const next = { state: 'starting' as const, elapsed: 2, stage: 'loading MLflow', expected: 8 };
    expect(startProgress(next, 0)).toEqual({ text: 'Starting the MLflow UI: loading MLflow · 2 s, about 6 s left', fraction: 0.25 });
    const late = { state: 'starting' as const, elapsed: 9, stage: 'answering', expected: 8 };
    expect(startProgress(late, 0)).toEqual({ text: 'Starting the MLflow UI: answering · 9 s, almost ready', fraction: 0.95 });
  });
});

describe('applyMlflowDefaults', () => {
  it("keeps MLflow's assistant from opening over the runs, once, and keeps the user's choice", () => {
    const store = new Map<string, string>([['mlflow.assistant.panelOpen_v1', 'true']]);
    const storage = { getItem: (k: string) => store.get(k) ?? null, setItem: (k: string, v: string) => void store.set(k, v) };
    expect(applyMlflowDefaults(storage)).toEqual(['mlflow.assistant.fab.autoOpenedOnFirstLoad_v1']);
    expect(store.get('mlflow.assistant.panelOpen_v1')).toBe('true');
    expect(applyMlflowDefaults(storage)).toEqual([]);
  });
});
