/**
 * jupyter_tracking for JupyterLab: the Experiments side panel, the status-bar item of a running tracked
 * cell, the %%track toggle (command, cell-toolbar button, shortcut T), and the MLflow UI in a tab.
 * The run card renderer is the MIME extension in mime.ts.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget } from '@jupyterlab/apputils';
import { Cell, CodeCell } from '@jupyterlab/cells';
import { INotebookTracker, Notebook, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';

import { bridge } from './bridge';
import { askKernel } from './kernel';
import { hasTrackMagic, toggleTrackMagic, trackRunName } from './magic';
import { MlflowTab } from './mlflowTab';
import { ExperimentsPanel } from './panel';
import { mlflowRoute } from './query';
import { TrackingStatus } from './statusbar';

const PLUGIN_ID = 'jupyter-tracking:plugin';

export namespace CommandIDs {
  export const toggleTrack = 'jupyter-tracking:toggle-track';
  export const openPanel = 'jupyter-tracking:open-experiments';
  export const openMlflow = 'jupyter-tracking:open-mlflow-ui';
  export const showRun = 'jupyter-tracking:show-run';
}

export const trackingIcon = new LabIcon({
  name: 'jupyter-tracking:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16">' +
    '<path class="jp-icon3" fill="#616161" d="M3 3h2v16h16v2H3z"/>' +
    '<path class="jp-icon3" fill="#616161" d="M7 15.6l4.2-4.7 3 2.6L19.4 7l1.5 1.3-6.5 7.9-3-2.6-2.9 3.3z"/>' +
    '</svg>'
});

function isTrackableCell(cell: Cell | null | undefined): cell is CodeCell {
  return !!cell && cell.model.type === 'code';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'Experiments panel, status bar, %%track toggle and MLflow UI tab for jupyter_tracking.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette, ILayoutRestorer, IStatusBar, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null,
    statusBar: IStatusBar | null,
    settings: ISettingRegistry | null
  ) => {
    const { commands, shell } = app;
    const currentPath = () => tracker.currentWidget?.context.path ?? panel.path;
    const panelOf = (notebook: Notebook): NotebookPanel | undefined => tracker.find(p => p.content === notebook);

    // The MLflow UI, one tab per notebook store (reused while open).
    const tabs = new Map<string, MainAreaWidget<MlflowTab>>();
    const openMlflow = async (experimentId?: string | null, runId?: string | null) => {
      const path = currentPath();
      const route = mlflowRoute(experimentId, runId);
      const existing = tabs.get(path);
      if (existing && !existing.isDisposed) {
        shell.activateById(existing.id);
        if (existing.content.ready) {
          existing.content.navigate(route);
        } else {
          await existing.content.open(path, route);
        }
        return;
      }
      const content = new MlflowTab();
      const widget = new MainAreaWidget({ content });
      widget.id = content.id;
      widget.title.label = 'MLflow UI';
      widget.title.caption = `MLflow UI for the store of ${path || 'the Jupyter root'}`;
      widget.title.icon = trackingIcon;
      widget.title.closable = true;
      tabs.set(path, widget);
      widget.disposed.connect(() => tabs.delete(path));
      shell.add(widget, 'main');
      shell.activateById(widget.id);
      await content.open(path, route);
    };

    const panel = new ExperimentsPanel({
      openMlflow: (e, r) => void openMlflow(e, r),
      // The kernel of the notebook the panel shows (the current one, or another open one with that path).
      askKernel: path => {
        const notebook = tracker.currentWidget?.context.path === path ? tracker.currentWidget : tracker.find(p => p.context.path === path);
        return askKernel(notebook?.sessionContext.session?.kernel);
      }
    });
    panel.title.icon = trackingIcon;
    shell.add(panel, 'left', { rank: 600 });
    if (restorer) {
      restorer.add(panel, 'jupyter-tracking-experiments');
    }
    const followNotebook = () => {
      if (tracker.currentWidget) {
        const widget = tracker.currentWidget;
        void widget.context.ready.then(() => {
          if (tracker.currentWidget === widget) {
            panel.setPath(widget.context.path);
          }
        });
      } else if (!panel.path) {
        panel.setPath('');
      }
    };
    tracker.currentChanged.connect(followNotebook);
    followNotebook();

    commands.addCommand(CommandIDs.toggleTrack, {
      label: 'Toggle %%track on the Active Cell',
      caption: 'Add or remove %%track: the cell becomes an MLflow run each time it runs',
      icon: trackingIcon,
      isEnabled: () => isTrackableCell(tracker.activeCell),
      isToggled: () => isTrackableCell(tracker.activeCell) && hasTrackMagic(tracker.activeCell.model.sharedModel.getSource()),
      execute: () => {
        const cell = tracker.activeCell;
        if (!isTrackableCell(cell)) {
          return;
        }
        const shared = cell.model.sharedModel;
        shared.setSource(toggleTrackMagic(shared.getSource()));
      }
    });
    commands.addCommand(CommandIDs.openPanel, {
      label: 'Show Experiments (jupyter_tracking)',
      execute: () => shell.activateById(panel.id)
    });
    commands.addCommand(CommandIDs.openMlflow, {
      label: 'Open MLflow UI',
      caption: "Open the MLflow UI for the notebook's store in a tab (served through the Jupyter server)",
      icon: trackingIcon,
      execute: args => openMlflow(args.experimentId as string | undefined, args.runId as string | undefined)
    });
    commands.addCommand(CommandIDs.showRun, {
      label: 'Show Run in the Experiments Panel',
      execute: async args => {
        shell.activateById(panel.id);
        await panel.showRun(String(args.runId), (args.experimentId as string) || null);
      }
    });
    if (palette) {
      const category = 'Experiment Tracking';
      for (const command of [CommandIDs.toggleTrack, CommandIDs.openPanel, CommandIDs.openMlflow]) {
        palette.addItem({ command, category });
      }
    }
    tracker.activeCellChanged.connect(() => commands.notifyCommandChanged(CommandIDs.toggleTrack));

    // Cards link back to the application through the bridge.
    bridge.openRun = card => void commands.execute(CommandIDs.showRun, { runId: card.run_id, experimentId: card.experiment_id });
    bridge.openInMlflow = card => void openMlflow(card.experiment_id, card.run_id);

    // The status-bar item follows the running tracked cell; the panel refreshes when it finishes.
    const status = new TrackingStatus();
    if (statusBar) {
      statusBar.registerStatusItem('jupyter-tracking:status', {
        item: status,
        align: 'left',
        rank: 20,
        isActive: () => status.running,
        activeStateChanged: status.stateChanged
      });
    }
    let runningCell: Cell | null = null;
    NotebookActions.executionScheduled.connect((_, { notebook, cell }) => {
      if (!isTrackableCell(cell) || !hasTrackMagic(cell.model.sharedModel.getSource())) {
        return;
      }
      runningCell = cell;
      status.start(panelOf(notebook)?.context.path ?? currentPath(), trackRunName(cell.model.sharedModel.getSource()));
    });
    NotebookActions.executed.connect((_, { notebook, cell }) => {
      if (cell === runningCell) {
        runningCell = null;
        status.stop();
      }
      if (isTrackableCell(cell) && hasTrackMagic(cell.model.sharedModel.getSource())) {
        const path = panelOf(notebook)?.context.path;
        if (path === undefined || path === panel.path) {
          void panel.refresh();
        }
      }
    });
    bridge.cardRendered.connect((_, card) => {
      status.updateFromCard(card);
      panel.noteGoals(card);
    });

    if (settings) {
      // Loading our settings brings in the cell-toolbar button and the shortcut defined in the schema.
      void settings.load(PLUGIN_ID).catch(reason => console.warn('jupyter-tracking: settings not loaded', reason));
    }
  }
};

export default plugin;
