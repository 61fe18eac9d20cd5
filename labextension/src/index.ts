/**
 * nbagent-labextension: one plugin per feature.
 *
 * - bridge: connects every open notebook to the nbagent comms of its kernel and
 *   applies the agent's notebook edits to the shared model.
 * - sidebar: the chat panel of the current notebook, and the `nbagent:open-chat` command
 *   ("Open nbagent Chat" in the View menu and the command palette).
 * The `%%agent` output renderer is the MIME extension in `mime.ts`.
 *
 * The same plugins run in Notebook 7, whose shell also has left and right side
 * panels, collapsed until something opens them: the command opens the chat there.
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { INotebookTracker } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { BridgeManager } from './manager';
import { markdownRenderer, plainRenderer } from './render';
import { chatIcon, ChatSidebar } from './sidebar';
import { IBridgeManager } from './tokens';

export { IBridgeManager } from './tokens';

const bridgePlugin: JupyterFrontEndPlugin<IBridgeManager> = {
  id: 'nbagent-labextension:bridge',
  description: 'Connects open notebooks to the nbagent comms of their kernels.',
  autoStart: true,
  requires: [INotebookTracker],
  provides: IBridgeManager,
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker): IBridgeManager => {
    return new BridgeManager(tracker);
  }
};

export const OPEN_CHAT_COMMAND = 'nbagent:open-chat';
/** The command's label in menus and the palette; the launcher card says `nbagent Chat`. */
export const OPEN_CHAT_LABEL = 'Open nbagent Chat';

const sidebarPlugin: JupyterFrontEndPlugin<void> = {
  id: 'nbagent-labextension:sidebar',
  description: 'The nbagent chat sidebar.',
  autoStart: true,
  requires: [IBridgeManager, INotebookTracker],
  optional: [IRenderMimeRegistry, ILayoutRestorer, ICommandPalette, ILauncher],
  activate: (
    app: JupyterFrontEnd,
    manager: IBridgeManager,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    launcher: ILauncher | null
  ): void => {
    const render = rendermime ? markdownRenderer(rendermime) : plainRenderer;
    const sidebar = new ChatSidebar(manager, tracker, render);
    // The right side panel: a tab in JupyterLab; in Notebook 7 the right panel,
    // which stays collapsed until the command (or View > Right Sidebar) opens it.
    app.shell.add(sidebar, 'right', { rank: 900 });
    restorer?.add(sidebar, 'nbagent-chat');

    // The View menu entry comes from schema/sidebar.json (`jupyter.lab.menus`).
    app.commands.addCommand(OPEN_CHAT_COMMAND, {
      label: args => (args.isLauncher ? 'nbagent Chat' : OPEN_CHAT_LABEL),
      caption: 'Chat with nbagent about the current notebook',
      icon: chatIcon,
      execute: () => {
        // Activation reveals the panel (expanding Notebook 7's collapsed side panel)
        // and focuses the input (ChatSidebar.onActivateRequest).
        app.shell.activateById(sidebar.id);
      }
    });
    palette?.addItem({ command: OPEN_CHAT_COMMAND, category: 'nbagent' });
    launcher?.add({
      command: OPEN_CHAT_COMMAND,
      category: 'Other',
      rank: 50,
      args: { isLauncher: true }
    });
  }
};

const plugins: JupyterFrontEndPlugin<unknown>[] = [bridgePlugin, sidebarPlugin];
export default plugins;
