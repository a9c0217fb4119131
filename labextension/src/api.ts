/**
 * Calls to the server extension's REST API (`{baseUrl}jupyter-tracking/api/...`).
 */

import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { queryString } from './query';
import { IExperiment, IMetricHistory, IRunDetail, IRunPage, IStoreInfo } from './types';

export class APIError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

async function request<T>(
  endpoint: string,
  params: Record<string, string | number | string[] | null | undefined>,
  init: RequestInit = {}
): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'jupyter-tracking/api', endpoint) + queryString(params);
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new APIError(`The Jupyter server did not answer: ${error}`, 0);
  }
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message = (data && (data.message || data.reason)) || response.statusText || 'request failed';
    throw new APIError(String(message), response.status);
  }
  return data as T;
}

export function getExperiments(path: string): Promise<{ store: IStoreInfo; experiments: IExperiment[] }> {
  return request('experiments', { path });
}

export interface IRunQuery {
  experimentIds?: string[];
  filter?: string;
  orderBy?: string;
  maxResults?: number;
  pageToken?: string | null;
}

export function searchRuns(path: string, query: IRunQuery): Promise<IRunPage> {
  return request('runs', {
    path,
    experiment_id: query.experimentIds,
    filter: query.filter,
    order_by: query.orderBy,
    max_results: query.maxResults,
    page_token: query.pageToken
  });
}

/** How many runs match (null for a tracking server): asked apart from the page, which shows first. */
export function countRuns(path: string, query: IRunQuery): Promise<{ total: number | null }> {
  return request('run-count', { path, experiment_id: query.experimentIds, filter: query.filter });
}

export function getRun(path: string, runId: string): Promise<IRunDetail> {
  return request(`runs/${encodeURIComponent(runId)}`, { path });
}

export function getMetricHistory(
  path: string,
  runId: string,
  key: string,
  maxPoints = 1000
): Promise<IMetricHistory> {
  return request(`runs/${encodeURIComponent(runId)}/metric-history`, { path, key, max_points: maxPoints });
}

/** Start (or reuse) the MLflow UI for the notebook's store; the answer is the same-origin URL to open. */
export function openMlflowUI(path: string): Promise<{ url: string; message: string }> {
  return request('mlflow-ui', { path }, { method: 'POST' });
}

/** How the MLflow UI server of the notebook's store is doing (polled while `openMlflowUI` waits). */
export interface IUIStartState {
  state: 'starting' | 'running' | 'stopped';
  elapsed: number | null;
  stage: string | null;
  /** Seconds the previous start took on this Jupyter server (null before the first). */
  expected: number | null;
}

export function getMlflowUIState(path: string): Promise<IUIStartState> {
  return request('mlflow-ui', { path });
}
