/**
 * nbagent-labextension: one plugin per feature.
 *
 * - bridge: connects every open notebook to the nbagent comms of its kernel and
 *   applies the agent's notebook edits to the shared model.
 * - sidebar: the chat panel of the current notebook, and the `nbagent:open-chat` command.
 * The `%%agent` output renderer is the MIME extension in `mime.ts`.
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
    app.shell.add(sidebar, 'right', { rank: 900 });
    restorer?.add(sidebar, 'nbagent-chat');

    app.commands.addCommand(OPEN_CHAT_COMMAND, {
      label: 'nbagent Chat',
      caption: 'Chat with nbagent about the current notebook',
      icon: chatIcon,
      execute: () => {
        // Activation reveals the panel and focuses the input (ChatSidebar.onActivateRequest).
        app.shell.activateById(sidebar.id);
      }
    });
    palette?.addItem({ command: OPEN_CHAT_COMMAND, category: 'nbagent' });
    launcher?.add({ command: OPEN_CHAT_COMMAND, category: 'Other', rank: 50 });
  }
};

const plugins: JupyterFrontEndPlugin<unknown>[] = [bridgePlugin, sidebarPlugin];
export default plugins;
